"""select: keep a budget of the records that reach it, chosen at random, for coverage, by difficulty or both.

stage.py holds the stage's options, its run and the verdict each record gets; coverage.py the k-center
greedy over sentence embeddings; difficulty.py the student's loss on each record's target.
"""
