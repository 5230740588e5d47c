"""The review page (`synthdistill review`), UI only: the local web server, its static page, and the SQLite
index that pages a run's records on the server. The decisions it writes (review.jsonl) and how stages
honour them belong to the run layer (synthdistill/runs/decisions.py)."""
