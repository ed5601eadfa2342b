"""MuJoCo's notices about Gymnasium's own model files stay out of the user's way; real
MuJoCo warnings still reach them."""

import subprocess
import sys

from tests.conftest import REPO

# Makes HalfCheetah (whose XML in Gymnasium sets the deprecated settotalmass) as train.py
# does and as a user's gym.make does, then steps a model into a NaN: a real warning.
SCRIPT = """
import gymnasium as gym
import mujoco
from agents.environments import make_single_env

make_single_env("HalfCheetah-v5").close()
make_single_env("HalfCheetah-P-v5").close()
gym.make("HalfCheetah-Dropout-v5").close()
model = mujoco.MjModel.from_xml_string(
    "<mujoco><worldbody><body><joint/><geom size='1'/></body></worldbody></mujoco>"
)
data = mujoco.MjData(model)
data.qpos[0] = float("nan")
mujoco.mj_step(model, data)
print("done")
"""


def test_halfcheetah_is_made_without_deprecation_notices_and_real_warnings_remain(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "MUJOCO_GL": "egl", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    assert "settotalmass" not in result.stderr + result.stdout
    assert "Nan, Inf or huge value in QPOS" in result.stderr + result.stdout
    log = (tmp_path / "MUJOCO_LOG.TXT").read_text()  # MuJoCo logs the real warning only
    assert "Nan, Inf or huge value in QPOS" in log and "settotalmass" not in log
