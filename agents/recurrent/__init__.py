"""The algorithm: recurrent PPO as a researcher would change it.

- ``ppo.py``: ``RecurrentPPO``, sb3-contrib's with the pieces below swapped in;
- ``policies.py``: the actor-critic that runs a whole minibatch of sequences in one call;
- ``cells.py``: LSTM and GRU behind one ``(h, c)`` interface;
- ``buffers.py``: rollout buffers that serve shuffled, truncated sequences.

Everything else in ``agents`` is application (config, envs, training, evaluation, run
folders, command lines) or insight into the memory (``agents.insight``).
"""

from agents.recurrent.cells import RECURRENT_CELLS
from agents.recurrent.ppo import DEFAULT_BPTT_LENGTH, RecurrentPPO

__all__ = ["DEFAULT_BPTT_LENGTH", "RECURRENT_CELLS", "RecurrentPPO"]
