"""The command line around the pipeline: files in, reports and writes out."""
