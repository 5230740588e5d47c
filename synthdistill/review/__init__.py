"""Reviewing a run: the decisions file (review.jsonl) the pipeline honours, the SQLite index that pages
records on the server, and the local web page (`synthdistill review`) that reads and writes them."""
