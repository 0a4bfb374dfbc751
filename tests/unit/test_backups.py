"""The backup search on games with known answers: planted redundancy in either direction, none in an
additive game, and every figure equal to the game's own values."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiongemma.errors import InputError
from diffusiongemma.redundancy import find_backups


class Counted:
    """A game from a function of the masks, counting rows."""

    def __init__(self, n, f):
        self.n, self.f, self.rows = n, f, 0

    def __call__(self, m):
        m = np.atleast_2d(np.asarray(m, dtype=float))
        self.rows += len(m)
        return self.f(m)


def test_planted_backup_is_found_with_exact_drops_and_the_counted_cost():
    # units 2 and 5 each suffice for the same −3 (the total effect is negative); unit 0 is additive
    game = Counted(7, lambda m: -3.0 * np.maximum(m[:, 2], m[:, 5]) + 0.5 * m[:, 0])
    phi = np.array([0.5, 0, -1.5, 0, 0, -1.5, 0])  # exact Shapley values
    b = find_backups(game, phi, top=2)
    assert b.candidates[:2] in ([2, 5], [5, 2])
    top = b.pairs[0]
    assert top.units == (2, 5) and top.redundant
    assert (top.drop_i, top.drop_j, top.drop_both) == (0.0, 0.0, -3.0)  # v(all) − v(without): −2.5 − 0.5
    assert top.redundancy == 3.0 and not any(p.redundant for p in b.pairs[1:])
    assert b.evaluations == game.rows == 7 + 2 + 6 + 5
    assert b.singles == [0.5, 0, 0, 0, 0, 0, 0]


def test_an_additive_game_has_no_backups():
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    b = find_backups(Counted(5, lambda m: m @ w), w, top=5)
    assert not any(p.redundant for p in b.pairs)
    assert max(abs(p.redundancy) for p in b.pairs) < 1e-12


def test_bad_input_is_refused():
    game = Counted(3, lambda m: m.sum(1))
    with pytest.raises(InputError):
        find_backups(game, np.zeros(4))
    with pytest.raises(InputError):
        find_backups(game, np.zeros(3), top=0)
