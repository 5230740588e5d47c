"""train: fine-tuning of the student with trl on the kept records.

stage.py holds the stage's options and supervised fine-tuning (full or LoRA); stepbystep.py the
two-task loss of Distilling step-by-step. Other trainers (preference, on-policy distillation) go beside
them as modules of their own.
"""
