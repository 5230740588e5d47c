"""evaluate: the student against its base and the teacher on the held-out split.

stage.py holds the stage, the standalone `synthdistill evaluate` and the judge's win rate; stats.py the
bootstrap intervals; plots.py the accuracy plot.
"""
