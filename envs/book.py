"""The children's book ("Doug saw Jane.") from Brandon Rohrer's introduction to LSTMs."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.symbols import SymbolTaskEnv, one_hot

WORDS = ("Doug", "Jane", "Spot", "saw", ".")
NAMES = (0, 1, 2)
SAW, PERIOD = 3, 4
# The agent writes the three words after the subject, in this order: saw, object, period.
SLOT_SAW, SLOT_OBJECT, SLOT_PERIOD = 0, 1, 2


class ChildrensBookEnv(SymbolTaskEnv):
    """Finish sentences of the form "Doug saw Jane." without writing "Doug saw Doug.".

    ## Description

    A narrator and the agent write a story of ``sentences`` sentences together. For each
    sentence the narrator writes the subject, a name drawn uniformly from Doug, Jane and Spot;
    the agent writes the rest: "saw", an object name other than the subject, and ".". The
    agent sees only the last word on the page, so when it picks the object (seeing "saw") the
    subject is out of view, and a name on the page may be a subject (write "saw") or its own
    object (write "."): memory must carry the subject and the place in the sentence. After
    Brandon Rohrer's introduction to LSTMs (2017), whose plain RNN wrote "Doug saw Doug.".

    ## Action Space

    ``Discrete(5)``: the word to write, 0 Doug, 1 Jane, 2 Spot, 3 "saw", 4 ".".

    ## Observation Space

    ``Box(0, 1, (5,), float32)``, a one-hot code of the last word on the page:

    | index | meaning                                            |
    |-------|----------------------------------------------------|
    | 0-2   | "Doug", "Jane", "Spot" (a subject, or the object)  |
    | 3     | "saw"                                              |
    | 4     | "." (never seen: a new subject follows at once)    |

    ## Rewards

    +1 for each grammatical word the agent writes, 0 for an ungrammatical one.

    ## Starting State

    Each subject is uniform over the three names, independently.

    ## Episode End

    Terminates on the first ungrammatical word, or after the last sentence's ".", at most at
    step ``3 * sentences``. ``info["is_success"]``: the whole story was written without an
    error. ``info["latent"]``: ``subject`` (0-2), ``slot`` (0 saw, 1 object, 2 period) and
    ``sentence`` (0-based).

    ## Arguments

    - ``sentences: int = 4``: sentences in the story.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    Give a memoryless policy more than it has, the slot it is writing: it still picks the
    object seeing only "saw", independently of the subject, which is uniform and fresh in
    each sentence, so it avoids the subject with probability at most 2/3 per sentence, and
    writes a whole story with probability at most (2/3)^S. The policy "saw" after Doug or
    Jane, "Spot" after "saw", "." after Spot reaches it without the slot: it fails exactly
    when the subject is Spot. **(2/3)^4 = 0.1975** for 4 sentences.

    ## Version History

    - v0: initial version (``ChildrensBook-v0``).
    """

    memoryless_ceiling: float = (2 / 3) ** 4

    def __init__(self, sentences: int = 4, render_mode: str | None = None) -> None:
        if sentences < 1:
            raise ValueError(f"sentences must be >= 1, got {sentences}")
        super().__init__("children's book", render_mode)
        self.sentences = sentences
        self.memoryless_ceiling = (2 / 3) ** sentences
        self.observation_space = spaces.Box(0.0, 1.0, (len(WORDS),), np.float32)
        self.action_space = spaces.Discrete(len(WORDS))
        self._subject = 0
        self._slot = SLOT_SAW
        self._sentence = 0
        self._last_word = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._sentence = 0
        self._new_sentence()
        self._tape.reset(WORDS[self._last_word])
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        word = int(action)
        if word != self.oracle_action() and not self._acceptable_object(word):
            self._tape.write(WORDS[word], -1)
            self._tape.status = "ungrammatical"
            return self._observation(), 0.0, True, False, self._info(False)
        if self._slot < SLOT_PERIOD:
            self._slot += 1
            self._last_word = word
            self._tape.write(WORDS[word], 1, WORDS[word])
            return self._observation(), 1.0, False, False, self._info()
        if self._sentence + 1 == self.sentences:
            self._tape.write(WORDS[word], 1)
            self._tape.status = "the end"
            return self._observation(), 1.0, True, False, self._info(True)
        self._sentence += 1
        self._new_sentence()
        self._tape.write(WORDS[word], 1, WORDS[self._last_word])
        return self._observation(), 1.0, False, False, self._info()

    def oracle_action(self) -> int:
        """The next grammatical word; as object, the name after the subject (reads memory)."""
        if self._slot == SLOT_SAW:
            return SAW
        if self._slot == SLOT_OBJECT:
            return NAMES[(self._subject + 1) % len(NAMES)]
        return PERIOD

    def memoryless_action(self, obs: np.ndarray) -> int:
        """Treat Spot as the object: saw after Doug or Jane, Spot after saw, . after Spot."""
        last = int(np.argmax(obs))
        if last == SAW:
            return NAMES[2]
        return PERIOD if last == NAMES[2] else SAW

    def _acceptable_object(self, word: int) -> bool:
        return self._slot == SLOT_OBJECT and word in NAMES and word != self._subject

    def _new_sentence(self) -> None:
        self._subject = int(self.np_random.choice(NAMES))
        self._slot = SLOT_SAW
        self._last_word = self._subject

    def _observation(self) -> np.ndarray:
        return one_hot(self._last_word, len(WORDS))

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        latent = {"subject": self._subject, "slot": self._slot, "sentence": self._sentence}
        info: dict[str, Any] = {"latent": latent}
        if success is not None:
            info["is_success"] = bool(success)
        return info
