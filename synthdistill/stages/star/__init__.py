"""The star stage: STaR's outer loop (stage.py)."""
