"""Steps shared by several features. None so far, on purpose.

Each feature's steps live in its own module (``steps/<area>.py``); a phrase moves here only when a second
feature needs the very same sentence, because pytest-bdd lets the last registration of a phrase win
silently and one definition per phrase is the only safe rule.
"""
