"""Project mode: the files of one project analysed together, so that a training run split over an entry script and
the modules it imports (an engine with ``train_one_epoch``, a trainer class) is converted as one run.

``groups`` finds which files belong together (import links, read with Python's own parser); ``combined`` joins a
group into one source for the converter and splits the converted source back into files; ``conversion`` converts a
group and maps every change and diagnostic back to its file and line.
"""
