"""Learning: the recurrent agent uses its memory where the memoryless baseline cannot."""

import agents


def test_recurrent_ppo_beats_the_memoryless_ceiling(memory_run, tmp_path):
    # MemoryStates-v0 asks for a cue seen 1-10 steps before; without memory the answer is a
    # coin flip (ceiling 0.5), so only an agent that carries the cue can pass 0.95.
    recurrent = agents.evaluate(memory_run, n_episodes=200, seed=1)
    assert recurrent["memoryless_ceiling"] == 0.5
    assert recurrent["success_rate"] >= 0.95

    memoryless = agents.train(
        env="MemoryStates-v0", algo="ppo", progress=False, run_dir=tmp_path / "ppo", eval_freq=0
    )
    ppo = agents.evaluate(memoryless, n_episodes=400, seed=1)
    # 400 episodes: a policy at the ceiling scores 0.5 +- 0.025 (1 sigma); 4 sigma above is 0.6
    assert ppo["success_rate"] <= 0.6


def test_evaluation_really_carries_the_state(memory_run):
    # the same trained agent, with its memory dropped at every step, is back at the ceiling
    carried = agents.evaluate(memory_run, n_episodes=200, seed=2, n_envs=4)
    dropped = agents.evaluate(memory_run, n_episodes=200, seed=2, n_envs=4, keep_state=False)
    assert carried["success_rate"] >= 0.95
    assert dropped["success_rate"] <= 0.7
