"""Escapes once the agent authorizes numpy, pickle, os, sqlite3 and '*': the kernel's walls must hold on their own.

Each attack is model-written code run in real sandbox workers (tests/fixtures/sandbox_driver.py), with
`["numpy", "pickle", "os", "sqlite3", "*"]` authorized, in three settings:

- `root`: the app runs as root (the worker drops to nobody in its own mount and network namespaces);
- `userns-root`: the app runs as root of a user namespace (`unshare --user --map-root-user`): not really root;
- `unmapped`: the app runs in a user namespace with no mapping (`unshare --user`), where no namespace can be made
  for the worker, the configuration in which the audit hook used to be the only wall.

Most attacks first turn the audit hook off from outside smolagents' interpreter (a pickle that runs `exec`, read
back by `np.load(..., allow_pickle=True)` or `pickle.loads`), so only the walls below Python are left. Each asserts
the attack's effect did not happen: the secret is in no output, the file outside was not written, the other worker
lives, no process outlives the cycle, the folder holds no more than its limit, the listener saw no connection.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .listener import Listener

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "fixtures" / "sandbox_driver.py"
AUTHORIZED = ["numpy", "pickle", "os", "sqlite3", "*"]
CANARY = "canary-2b7d-app-environment-API-KEY-value"
KEY_MARKER = "trace-key-marker-91c3e0"
DB_MARKER = "memory-db-marker-5a0f77"
PASSWD_MARKER = "root:x:0:0"
DISK_MB = 100
MODES = ("root", "userns-root", "unmapped")

pytestmark = pytest.mark.e2e  # every attack runs in real sandbox workers


class _Exec:
    """Pickles as `eval(expression)`: what an attacker hides in a .npy file or a pickle."""

    def __init__(self, source: str) -> None:
        self.expression = f"(lambda g: (exec({source!r}, g), g.get('result'))[1])({{}})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (eval, (self.expression,))


def escape(body: str) -> str:
    """Python that runs outside smolagents' interpreter, switches the audit hook off, runs `body` and sets `result`."""
    source = (
        "import sys, os\n"
        "sys.modules['__main__'].AUDIT.armed = False\n"
        "out = []\n"
        "def grab(label, fn):\n"
        "    try:\n"
        "        out.append(f'{label}: {fn()!r}')\n"
        "    except BaseException as e:\n"
        "        out.append(f'{label} failed: {type(e).__name__}: {e}')\n"
        f"{body}\n"
        "result = chr(10).join(out)\n"
    )
    return pickle.dumps(_Exec(source), protocol=2).hex()


def via_numpy(body: str) -> str:
    return (
        "import numpy as np\n"
        f"import binascii\nnp.frombuffer(binascii.unhexlify('{escape(body)}'), dtype=np.uint8).tofile('evil.npy')\n"
        "print(np.load('evil.npy', allow_pickle=True))"
    )


def via_pickle(body: str) -> str:
    return f"import pickle, binascii\nprint(pickle.loads(binascii.unhexlify('{escape(body)}')))"


READ_SECRETS = (
    "grab('passwd', lambda: open('/etc/passwd').read())\n"
    "grab('environ', lambda: open(f'/proc/{os.getppid()}/environ', 'rb').read())\n"
    "grab('key', lambda: open('{key}').read())\n"
    "grab('shell', lambda: os.popen('cat /etc/passwd {key}; cat /proc/$PPID/environ').read())\n"
    "grab('write', lambda: open('{outside}', 'w').write('pwned'))"
)


@dataclass
class Scene:
    mode: str
    root: Path
    key: Path  # the app's trace.key
    db: Path  # the app's memory database
    outside: Path  # where attacks try to write
    listener: Listener

    def fill(self, code: str) -> str:
        for name, value in (("key", self.key), ("db", self.db), ("outside", self.outside)):
            code = code.replace("{" + name + "}", str(value))
        return code.replace("{port}", str(self.listener.port))

    def run(self, steps: list[str], **spec: Any) -> dict[str, Any]:
        spec = {
            "workdir": str(self.root / "data" / "sandbox" / "cycle"),
            "authorized": AUTHORIZED,
            "limits": {"step_seconds": 20, "memory_mb": 1024, "disk_mb": DISK_MB},
            "steps": [self.fill(code) for code in steps],
            **spec,
        }
        prefix = {
            "root": [],
            "userns-root": ["unshare", "--user", "--map-root-user"],
            "unmapped": ["unshare", "--user"],
        }
        env = {**os.environ, "COGSCOPE_TEST_CANARY": CANARY, "OPENAI_API_KEY": CANARY, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [*prefix[self.mode], sys.executable, str(DRIVER)],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(params=MODES)
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    mode = str(request.param)
    if os.getuid() != 0:
        pytest.skip("these settings are made from root (the unprivileged ones with unshare --user)")
    if mode != "root" and shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for the unprivileged settings")
    data = tmp_path / "data"
    (data / "sandbox").mkdir(parents=True)
    key = data / "trace.key"
    key.write_text(KEY_MARKER)
    key.chmod(0o600)
    db = data / "memory.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE secrets (value TEXT)")
        con.execute("INSERT INTO secrets VALUES (?)", (DB_MARKER,))
    con.close()
    listener = Listener()
    try:
        yield Scene(mode, tmp_path, key, db, tmp_path / "outside-pwned", listener)
    finally:
        listener.stop()


def text_of(ran: dict[str, Any]) -> str:
    return "\n".join(f"{s.get('output', '')}\n{s.get('logs', '')}\n{s.get('error', '')}" for s in ran["steps"])


def assert_no_secret(scene: Scene, ran: dict[str, Any]) -> str:
    text = text_of(ran)
    for marker in (CANARY, KEY_MARKER, DB_MARKER, PASSWD_MARKER):
        assert marker not in text, f"{marker} leaked:\n{text[:3000]}"
    assert not scene.outside.exists(), f"the attack wrote {scene.outside}:\n{text[:3000]}"
    return text


def test_numpy_load_runs_a_pickle_that_turns_the_hook_off(scene: Scene) -> None:
    ran = scene.run([via_numpy(scene.fill(READ_SECRETS))])
    text = assert_no_secret(scene, ran)
    assert "passwd failed" in text and ("shell failed" in text or "shell: ''" in text), text


def test_pickle_loads_reads_and_writes_outside(scene: Scene) -> None:
    ran = scene.run([via_pickle(scene.fill(READ_SECRETS))])
    text = assert_no_secret(scene, ran)
    assert "key failed" in text and "write failed" in text, text


def test_the_code_cannot_change_pythons_install(scene: Scene) -> None:
    """Python's own files stay read-only, wherever the venv lives (under /tmp, the worker binds it back into its
    tmpfs read-only): a planted module would run in the app's next worker, or in the app."""
    import numpy

    target = Path(numpy.__file__).with_name("cogscope_planted.py")
    body = f"grab('plant', lambda: open({str(target)!r}, 'w').write('pwned'))"
    try:
        ran = scene.run([via_pickle(body)])
        text = text_of(ran)
        assert "plant failed" in text and not target.exists(), text
    finally:
        target.unlink(missing_ok=True)


def test_star_flips_the_audit_flag(scene: Scene) -> None:
    ran = scene.run(
        [
            "import sys, pathlib\nsys.modules['__main__'].AUDIT.armed = False\nprint('flag', "
            "sys.modules['__main__'].AUDIT.armed)",
            "for p in ('/etc/passwd', '{key}', '{db}'):\n"
            "    try:\n        print(pathlib.Path(p).read_bytes())\n"
            "    except OSError as e:\n        print('refused', p, e)\n"
            "pathlib.Path('{outside}').write_text('pwned')",
        ]
    )
    text = assert_no_secret(scene, ran)
    assert "flag False" in text, text  # the flag is off: only the walls below Python are left


def test_os_open_with_dir_fd(scene: Scene) -> None:
    """A path relative to a descriptor of /usr/lib: the hook used to resolve it against the working folder."""
    ran = scene.run(
        [
            "import os\nos.makedirs('a/b', exist_ok=True)\nos.chdir('a/b')\nfd = os.open('/usr/lib', os.O_RDONLY)\n"
            "for target in ('/etc/passwd', '{key}'):\n"
            "    try:\n"
            "        print(os.read(os.open('../../' + target.lstrip('/'), os.O_RDONLY, dir_fd=fd), 4096))\n"
            "    except OSError as e:\n"
            "        print('refused', e)\n"
            "os.write(os.open('../../' + '{outside}'.lstrip('/'), os.O_WRONLY | os.O_CREAT, dir_fd=fd), b'x')"
        ]
    )
    assert_no_secret(scene, ran)


@pytest.mark.parametrize(
    "code",
    [
        "import sqlite3\ncon = sqlite3.connect('file:{db}?mode=ro', uri=True)\n"
        "print(con.execute('select * from secrets').fetchall())",
        "import sqlite3\ncon = sqlite3.connect(':memory:')\ncon.execute(\"ATTACH DATABASE '{db}' AS m\")\n"
        "print(con.execute('select * from m.secrets').fetchall())",
        "import sqlite3\ncon = sqlite3.connect(':memory:')\ncon.execute(\"ATTACH DATABASE '{outside}' AS o\")\n"
        "con.execute('create table o.t (x)')\ncon.commit()",
        "import sqlite3\ncon = sqlite3.connect('here.db')\ncon.execute('create table t (x)')\ncon.commit()\n"
        "con.execute(\"VACUUM INTO '{outside}'\")",
    ],
    ids=["uri", "attach-read", "attach-write", "vacuum-into"],
)
def test_sqlite_reaches_outside_the_folder(scene: Scene, code: str) -> None:
    ran = scene.run([code])
    assert_no_secret(scene, ran)
    assert not ran["steps"][0]["ok"], ran


def test_kill_another_cycles_worker(scene: Scene) -> None:
    kill = via_pickle("grab('kill', lambda: os.kill(int(open('victim').read()), 9))")
    ran = scene.run(["import pathlib\npathlib.Path('victim').write_text(str(victim_pid))\n" + kill], victim=True)
    assert ran["victim_before"]["ok"], ran
    assert ran["victim_after"]["ok"] and "victim alive" in ran["victim_after"]["logs"], ran
    assert "kill failed" in text_of(ran), text_of(ran)


def _running_worker(pid: int) -> bool:
    try:
        return b"sandbox_worker.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_setsid_child_does_not_outlive_the_cycle(scene: Scene) -> None:
    body = (
        "def child():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.setsid()\n"
        "        import time\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"
        "    return f'child-pid={pid}'\n"
        "grab('fork', child)\n"
        "grab('setsid', os.setsid)"
    )
    ran = scene.run([via_numpy(body)])
    text = text_of(ran)
    pids = [int(p.split("'")[0].split(")")[0]) for p in text.split("child-pid=")[1:]]
    try:
        assert not any(_running_worker(pid) for pid in pids), f"a child outlived its cycle: {pids}"
        assert "fork failed" in text and "setsid failed" in text, text
    finally:
        for pid in pids:
            if _running_worker(pid):
                os.kill(pid, 9)


def test_the_folder_has_a_total_disk_limit(scene: Scene) -> None:
    ran = scene.run(
        [
            "import pathlib\nwritten = 0\nchunk = b'x' * 1048576\n"
            "try:\n"
            "    for i in range(10):\n"
            "        with pathlib.Path(f'fill{i}').open('wb') as f:\n"
            "            for _ in range(30):\n"
            "                f.write(chunk)\n"
            "                f.flush()\n"
            "                written += 1\n"
            "except OSError as e:\n"
            "    print('stopped:', e)\n"
            "print('written MB', written)"
        ]
    )
    first = ran["steps"][0]
    if first["ok"]:  # the file system said no: the code went on, having written no more than the limit
        written = int(first["logs"].split("written MB")[1].split()[0])
        assert written <= DISK_MB, first["logs"]
        assert "No space left on device" in first["logs"], first["logs"]
    else:  # no namespace for a bounded file system: the app measured the folder and killed the worker
        assert "COGSCOPE_SANDBOX_DISK_MB" in first["error"], first


def test_socket_to_a_loopback_listener(scene: Scene) -> None:
    body = "import socket\ngrab('connect', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2))"
    ran = scene.run([via_pickle(scene.fill(body))])
    assert scene.listener.accepted == 0, text_of(ran)
    assert "connect failed" in text_of(ran), text_of(ran)


def test_pandas_works_when_authorized(scene: Scene) -> None:
    ran = scene.run(
        [
            "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.5, 6.0]})\n"
            "df.to_csv('t.csv', index=False)\nback = pd.read_csv('t.csv')\nprint(back.describe())\n"
            "print(back.groupby('a').sum().to_string())\nprint(back.to_json())"
        ],
        authorized=["pandas"],
    )
    first = ran["steps"][0]
    assert first["ok"], first
    assert "mean" in first["logs"] and '"b":{"0":4.0' in first["logs"], first["logs"]


def test_numpy_threads_work(scene: Scene) -> None:
    ran = scene.run(["import numpy as np\nm = np.ones((400, 400))\nprint('sum', np.dot(m, m).sum())"])
    assert ran["steps"][0]["ok"] and "sum 64000000.0" in ran["steps"][0]["logs"], ran


def test_without_landlock_the_worker_refuses_unless_told_weak(scene: Scene) -> None:
    """A kernel without Landlock (its system calls answer ENOSYS): one line naming the fix, no code run; with
    COGSCOPE_SANDBOX_WEAK=1 the code runs behind the interpreter's walls and seccomp, and says so."""
    if scene.mode != "root":
        pytest.skip("one setting is enough: the refusal does not depend on it")
    code = "import pathlib\npathlib.Path('ran').write_text('x')\nprint('code ran')"
    refused = scene.run([code], deny_landlock=True)
    error = refused["steps"][0].get("error", "")
    assert not refused["steps"][0]["ok"] and "code ran" not in text_of(refused), refused
    assert "Landlock is not available" in error and "COGSCOPE_SANDBOX_WEAK=1" in error, error
    assert "\n" not in error, error
    weak = scene.run([code], deny_landlock=True, limits={"step_seconds": 20, "weak": True})
    assert weak["steps"][0]["ok"] and "code ran" in weak["steps"][0]["logs"], weak
    assert "Landlock is not available" in weak["walls"]["weak"] and weak["walls"]["seccomp"], weak["walls"]


def test_sqlite_in_the_folder_works(scene: Scene) -> None:
    """The positive control of the sqlite3 attacks: databases (and ATTACH) inside the working folder work."""
    ran = scene.run(
        [
            "import sqlite3\ncon = sqlite3.connect('work.db')\ncon.execute('create table t (x)')\n"
            "con.execute(\"ATTACH DATABASE 'more.db' AS more\")\ncon.execute('create table more.u (y)')\n"
            "con.execute('insert into more.u values (41)')\ncon.commit()\n"
            "print('answer', con.execute('select y + 1 from more.u').fetchall())"
        ],
        authorized=["sqlite3"],
    )
    assert ran["steps"][0]["ok"] and "answer [(42,)]" in ran["steps"][0]["logs"], ran
