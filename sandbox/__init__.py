"""The embedded default target of the drills: the CodeBlack reference backend and its migrations."""
