"""Registers the partially observable robots with Gymnasium."""

POMDP_MUJOCO: list[str] = []
POMDP_CLASSIC: list[str] = []
