"""Growing new instructions from old ones, shared by the adversarial, evolve and self_instruct stages.

instructions.py: lineage (a new record linked to its seed), reading a teacher's new instruction, and the
degeneracy and novelty filters; expressions.py: the restricted evaluator of arithmetic expressions that
makes a grown problem's gold answer checkable.
"""
