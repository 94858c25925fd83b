"""The container: hotfolder as PID 1 of a PID namespace, and the image built from container/Containerfile
unchanged and run for real (no registry is reachable here: the base is made by debootstrap and tagged
docker.io/library/debian:bookworm-slim; buildah builds and runs it with chroot isolation)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, corpus, tool, unavailable

BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/hotfolder:test"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare, buildah)")


def _descendants(pid: int) -> list[int]:
    """Every process under `pid`, by /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@ROOT_ONLY
def test_hotfolder_runs_as_pid_1_of_a_pid_namespace(tmp_path: Path) -> None:
    """A container without an init makes the daemon PID 1: its fork server used to take "my parent is
    pid 1" for "my parent died" and quit, and the daemon ended in an EOFError. Now two pictures are
    processed by the pool there, exit 0."""
    unshare = tool("unshare", "util-linux")
    (tmp_path / "inbox").mkdir()
    for name in ("hopper.bmp", "dscn0010.jpg"):
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    done = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-m", "hotfolder", "process", "inbox"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done 2" in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "outbox" / "web").iterdir()) == ["dscn0010.jpg", "hopper.jpg"]


def _buildah() -> str:
    if os.geteuid() != 0:
        unavailable("building the image needs root (buildah)")
    tool("debootstrap", "debootstrap")
    return tool("buildah", "buildah")


def _run(*args: str, timeout: float = 900) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def _base(buildah: str, work: Path) -> None:
    """debian:bookworm-slim as Debian's own packages make it (debootstrap minbase), unless it is here."""
    if subprocess.run([buildah, "inspect", BASE], capture_output=True, check=False).returncode == 0:
        return
    rootfs = work / "rootfs"
    _run("debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (rootfs / junk).glob("*"):
            if f.is_file():
                f.unlink()
    ctr = _run(buildah, "from", "scratch").strip()
    mnt = _run(buildah, "mount", ctr).strip()
    _run("cp", "-a", f"{rootfs}/.", mnt)
    _run(buildah, "umount", ctr)
    _run(buildah, "commit", "-q", ctr, BASE)
    _run(buildah, "rm", ctr)
    shutil.rmtree(rootfs)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image, built from the unchanged Containerfile; the build's RUN steps borrow the host's CA
    bundle (the package index is behind a TLS proxy) by a mount, never baked in."""
    buildah = _buildah()
    work = tmp_path_factory.mktemp("image")
    _base(buildah, work)
    pip_conf = work / "pip.conf"
    pip_conf.write_text("[global]\ncert = /run/hotfolder-build-ca.crt\n")
    started = time.monotonic()
    _run(
        buildah, "bud", "--format", "docker", "--isolation", "chroot",
        "-v", "/etc/ssl/certs/ca-certificates.crt:/run/hotfolder-build-ca.crt:ro",
        "-v", f"{pip_conf}:/etc/pip.conf:ro",
        "-f", str(ROOT / "container" / "Containerfile"), "-t", IMAGE, str(ROOT),
    )  # fmt: skip
    print(f"image built in {time.monotonic() - started:.0f} s")
    yield buildah


def _config(buildah: str) -> dict[str, object]:
    data = json.loads(_run(buildah, "inspect", "--type", "image", IMAGE))
    config: dict[str, object] = data["Docker"]["config"]
    return config


class Running:
    """The image's own Entrypoint + Cmd under `buildah run --isolation chroot`, with bind mounts."""

    def __init__(
        self,
        buildah: str,
        folders: Path,
        user: str | None = None,
        config: Path | None = None,
        cmd: tuple[str, ...] = (),
    ) -> None:
        self.buildah = buildah
        self.folders = folders
        self.ctr = _run(buildah, "from", IMAGE).strip()
        # The image's VOLUMEs would be mounted as buildah's own volumes over the binds: off in this
        # working container only (the image keeps them).
        _run(
            buildah,
            "config",
            *(f"--volume=/{v}-" for v in ("inbox", "outbox", "state", "quarantine")),
            self.ctr,
        )
        image = _config(buildah)
        command = [*image["Entrypoint"], *(cmd or image["Cmd"])]  # type: ignore[misc]
        self.mounts = [
            x for v in ("inbox", "outbox", "state", "quarantine") for x in ("-v", f"{folders / v}:/{v}")
        ]
        if config is not None:
            self.mounts += ["-v", f"{config}:/config:ro"]
        self.log = (folders / "log.jsonl").open("w")
        self.proc = subprocess.Popen(
            [
                buildah,
                "run",
                "--isolation",
                "chroot",
                *(["--user", user] if user else []),
                *self.mounts,
                self.ctr,
                "--",
                *command,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def events(self) -> list[str]:
        text = (self.folders / "log.jsonl").read_text()
        return [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]

    def wait(self, check: object, what: str, seconds: float = 120) -> None:
        assert callable(check)
        deadline = time.monotonic() + seconds
        while not check():
            assert self.proc.poll() is None, (self.folders / "log.jsonl").read_text()[-3000:]
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def pid_of(self, needle: str) -> int:
        """The process under `buildah run` whose command line starts with `needle` (buildah's own
        chroot helper, whose arguments name the same programs, is not taken for it)."""
        found = [p for p in _descendants(self.proc.pid) if _comm(p).startswith(needle)]
        assert found, f"no {needle!r} under buildah run"
        return found[0]

    def healthy(self, max_age: int | None = None) -> bool:
        """The image's HEALTHCHECK command, run in the same container."""
        test = _config(self.buildah)["Healthcheck"]["Test"]  # type: ignore[index]
        assert test[0] == "CMD", test
        env = ["--env", f"HOTFOLDER_HEALTH_MAX_AGE={max_age}"] if max_age else []
        done = subprocess.run(
            [self.buildah, "run", "--isolation", "chroot", *env, *self.mounts, self.ctr, "--", *test[1:]],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        subprocess.run([self.buildah, "rm", self.ctr], capture_output=True, check=False)


def _folders(tmp_path: Path, owner: int) -> Path:
    for v in ("inbox", "outbox", "state", "quarantine"):
        (tmp_path / v).mkdir()
        os.chown(tmp_path / v, owner, owner)
    return tmp_path


@pytest.mark.slow
def test_the_image_is_small_enough_and_runs_as_its_own_user(image: str, tmp_path: Path) -> None:
    """Under 700 MB; a JPEG in comes out with its EXIF, owned by UID 10001; a broken one is quarantined;
    the health check passes while it runs and fails once the daemon is stopped (SIGSTOP); SIGTERM to
    PID 1 (tini, as `docker stop` sends it) ends it cleanly with exit 0."""
    buildah = image
    listed = _run(buildah, "images", "--format", "{{.Size}}", IMAGE).strip()  # uncompressed, as podman's
    print(f"image size: {listed}")
    number, unit = listed.split()
    assert unit == "MB" and float(number) < 700, listed
    assert _config(buildah)["User"] == "10001:10001"
    folders = _folders(tmp_path, 10001)
    run = Running(buildah, folders)
    try:
        run.wait(lambda: "daemon.started" in run.events(), "the daemon")
        shutil.copy(corpus("canon_eos_7d.jpg"), folders / "inbox" / "canon.jpg")
        (folders / "inbox" / "broken.jpg").write_bytes(corpus("dscn0010.jpg").read_bytes()[:3000])
        web = folders / "outbox" / "web" / "canon.jpg"
        run.wait(lambda: web.exists() and (folders / "quarantine" / "broken.jpg").exists(), "the outputs")
        with Image.open(web) as im:
            assert im.getexif()[0x010F] == "Canon"  # Make
        for made in (web, folders / "quarantine" / "broken.jpg", folders / "state" / "ledger.sqlite3"):
            assert (made.stat().st_uid, made.stat().st_gid) == (10001, 10001), made
        assert run.healthy()
        daemon = run.pid_of("/opt/hotfolder/bin/python3 /opt/hotfolder/bin/hotfolder run")
        os.kill(daemon, signal.SIGSTOP)
        try:
            time.sleep(16)
            assert not run.healthy(max_age=15)  # wedged: live.json no longer rewritten
        finally:
            os.kill(daemon, signal.SIGCONT)
        os.kill(run.pid_of("/usr/bin/tini"), signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0
        assert "daemon.stopped" in run.events()
    finally:
        run.close()


@pytest.mark.slow
def test_any_user_id_owns_its_outputs_and_a_mounted_config_replaces_the_default(
    image: str, tmp_path: Path
) -> None:
    """--user 4242:4242 (compose's user:), no passwd entry for it, and a config mounted at /config with
    its own rule file and file_mode: outputs belong to 4242 with that mode, where that rule puts them."""
    folders = _folders(tmp_path, 4242)
    config = tmp_path / "config"
    config.mkdir()
    (config / "hotfolder.toml").write_text(
        'rules = ["mine.toml"]\noutput_root = "/outbox"\nstate_dir = "/state"\nquarantine = "/quarantine"\n'
        'file_mode = "0640"\n[[watch]]\npath = "/inbox"\n'
    )
    (config / "mine.toml").write_text(
        '[[rule]]\nname = "mine"\n[[rule.output]]\nformat = "png"\npath = "mine/{stem}.png"\n'
    )
    for made in (config, *config.iterdir()):
        made.chmod(0o755 if made.is_dir() else 0o644)  # readable by 4242: pytest's folders are 0700
    run = Running(image, folders, user="4242:4242", config=config)
    try:
        run.wait(lambda: "daemon.started" in run.events(), "the daemon")
        shutil.copy(corpus("hopper.bmp"), folders / "inbox" / "h.bmp")
        png = folders / "outbox" / "mine" / "h.png"
        run.wait(png.exists, "the output")
        assert (png.stat().st_uid, png.stat().st_gid) == (4242, 4242)
        assert png.stat().st_mode & 0o777 == 0o640
        os.kill(run.pid_of("/usr/bin/tini"), signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0
    finally:
        run.close()


def test_the_compose_file_keeps_state_in_a_named_volume_and_the_token_in_a_secret() -> None:
    """compose.yaml as docker compose reads it (YAML): both services from the Containerfile, the user
    from .env, /state a named volume (never a bind mount), the page's token a secret, a restart policy,
    and every variable it uses given in env.example."""
    import re  # noqa: PLC0415

    import yaml  # noqa: PLC0415 - PyYAML, which dask brings

    text = (ROOT / "container" / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert set(services) == {"hotfolder", "serve"}
    for service in services.values():
        assert service["build"]["dockerfile"] == "container/Containerfile"
        assert service["user"] == "${UID:-10001}:${GID:-10001}"
        assert service["restart"] == "unless-stopped"
        assert "state:/state" in service["volumes"]
    assert "state" in compose["volumes"]
    assert services["serve"]["secrets"] == ["hotfolder_token"]
    assert "/run/secrets/hotfolder_token" in services["serve"]["command"]
    assert "live.json" in " ".join(services["hotfolder"]["healthcheck"]["test"])
    example = (ROOT / "container" / "env.example").read_text()
    for name in set(re.findall(r"\$\{(\w+)", text)):
        assert re.search(rf"^{name}=", example, re.M), name


@pytest.mark.slow
def test_the_status_page_runs_from_the_image_with_its_token_file(image: str, tmp_path: Path) -> None:
    """compose's second service: `serve` from the same image, on an address others can reach, with a
    token file readable by the container's user only; the page and /metrics answer with the token."""
    import urllib.request  # noqa: PLC0415

    from conftest import free_port  # noqa: PLC0415

    folders = _folders(tmp_path, 10001)
    token = tmp_path / "state" / "token"
    token.write_text("a-token-of-more-than-16-characters\n")
    os.chown(token, 10001, 10001)
    token.chmod(0o600)
    port = free_port()
    run = Running(
        image, folders, cmd=("serve", "--listen", f"0.0.0.0:{port}", "--token-file", "/state/token")
    )
    try:
        headers = {"Authorization": "Bearer a-token-of-more-than-16-characters"}
        answer: list[bytes] = []

        def up() -> bool:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
                answer[:] = [urllib.request.urlopen(request, timeout=5).read()]
            except OSError:
                return False
            return True

        run.wait(up, "the page")
        assert b"hotfolder_daemon_up" in answer[0]
    finally:
        run.close()


def test_a_pool_that_cannot_start_is_said_in_one_line_not_a_traceback(tmp_path: Path) -> None:
    """The fork server ends while it starts (here: the module it preloads exits at import, as the
    PID 1 mistake made it do): `process` says so in one line, exit 1, no Python traceback."""
    (tmp_path / "dies.py").write_text("import os\nos._exit(3)\n")
    (tmp_path / "sitecustomize.py").write_text("import hotfolder.run.prefork as p\np.PRELOAD = 'dies'\n")
    (tmp_path / "inbox").mkdir()
    for name in ("hopper.bmp", "dscn0010.jpg"):
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    done = subprocess.run(
        [sys.executable, "-m", "hotfolder", "process", "inbox"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT / 'daemon'}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "the worker pool cannot start: its fork server ended while starting" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
