"""self_instruct: Self-Instruct bootstrapping (Wang et al., 2023), new tasks grown from a few seed tasks.

stage.py holds the stage's options and its loop in waves; seeds.py reads the seed tasks; candidate.py
holds a new instruction on its way through the steps: generation (generate.py), the filters
(filters.py), classification identification (classify.py) and instance generation (instances.py), the
last two after few-shot seeds drawn once per run (shots.py).
"""
