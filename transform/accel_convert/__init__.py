"""accel-convert: rewrite single-device PyTorch training scripts to run on any device and process count."""

from accel_convert.model import Change, ConvertError, Diagnostic, Options, Result

__all__ = ["Change", "ConvertError", "Diagnostic", "Options", "Result", "convert_source"]


def __getattr__(name):
    # convert_source pulls in libcst; load it only when asked, so `import accel_convert` stays cheap.
    if name == "convert_source":
        from accel_convert.convert import convert_source

        return convert_source
    raise AttributeError(name)
