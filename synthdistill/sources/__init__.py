"""Data sources: procedural built-in tasks (`builtin`) and local files or `datasets` datasets (`files`).

Each source is a function `(spec, options, seed, count, base_dir) -> Iterator[dict]` found through the
`synthdistill.sources` entry points; `synthdistill.data` maps its rows to task fields and splits them.
"""
