"""The student: how it is asked (prompts.py) and the card it carries (card.py).

Training writes both; evaluation and the adversarial rounds read them, so a trained student is always
asked the way it was taught.
"""
