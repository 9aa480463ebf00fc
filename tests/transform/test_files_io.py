"""Reading, decoding, encoding and atomic writing keep a file's bytes, encoding and permissions."""

import os
import stat

import pytest

from accel_convert.shell.files import SourceError, decode_source, encode_source, read_source, write_atomic


@pytest.mark.parametrize(
    "data",
    [
        b"import torch\nx = 1\n",
        b"import torch\r\nx = 1\r\n",  # CRLF
        b"\xef\xbb\xbfimport torch\nname = '\xc3\xa9t\xc3\xa9'\n",  # UTF-8 BOM
        b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n",  # PEP 263 cookie
        b"x = 1",  # no final newline
        b"a = 1\r\nb = 2\n",  # mixed endings
        b"",
    ],
    ids=["lf", "crlf", "bom", "latin-1", "no-final-newline", "mixed", "empty"],
)
def test_decode_then_encode_gives_back_the_same_bytes(data):
    source = decode_source(data)
    assert encode_source(source.text, source.encoding) == data


def test_decoding_keeps_crlf_and_drops_the_bom_from_the_text():
    source = decode_source(b"\xef\xbb\xbfa = 1\r\n")
    assert source.text == "a = 1\r\n"
    assert source.encoding == "utf-8-sig"


def test_latin1_cookie_decodes_the_accented_text():
    source = decode_source(b"# coding: latin-1\nname = '\xe9'\n")
    assert source.text.endswith("name = '\u00e9'\n")
    assert source.encoding == "iso-8859-1"


def test_invalid_utf8_names_the_line_and_byte():
    with pytest.raises(SourceError) as info:
        decode_source(b"a = 1\nb = '\xff'\n")
    message = info.value.format("x.py")
    assert message.startswith("x.py: error: cannot decode line 2 as utf-8: invalid byte b'\\xff'")


def test_unknown_encoding_cookie_is_an_error():
    with pytest.raises(SourceError, match="cannot determine the encoding"):
        decode_source(b"# coding: no-such-codec\nx = 1\n")


def test_text_that_the_encoding_cannot_hold_is_an_error():
    with pytest.raises(SourceError, match="cannot be encoded as iso-8859-1"):
        encode_source("x = '\u4e2d'\n", "iso-8859-1")


def test_unreadable_file_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        read_source(str(tmp_path / "missing.py"))


def test_atomic_write_replaces_content_and_keeps_permissions(tmp_path):
    path = tmp_path / "train.py"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o751)
    write_atomic(str(path), b"new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert os.listdir(tmp_path) == ["train.py"]  # no temporary file left behind


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.py"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    write_atomic(str(link), b"new\n")
    assert link.is_symlink()
    assert real.read_bytes() == b"new\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_atomic_write_into_a_read_only_folder_fails_and_leaves_the_file(tmp_path):
    path = tmp_path / "train.py"
    path.write_bytes(b"old\n")
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(SourceError, match="cannot write"):
            write_atomic(str(path), b"new\n")
    finally:
        os.chmod(tmp_path, 0o755)
    assert path.read_bytes() == b"old\n"


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555])
def test_atomic_write_refuses_a_read_only_file_and_leaves_bytes_and_mode(tmp_path, mode):
    path = tmp_path / "train.py"
    path.write_bytes(b"old\r\n")
    os.chmod(path, mode)
    with pytest.raises(SourceError, match=r"the file is read-only: not replaced \(make it writable, e.g. `chmod u\+w"):
        write_atomic(str(path), b"new\n")
    assert path.read_bytes() == b"old\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert os.listdir(tmp_path) == ["train.py"]  # no temporary file left behind
