"""Seed "Industry Parallels", section "Model Serving (API Deployment)": build the image with the serving
code (`docker build -t model-api .` -> `image-create model-api`), deploy it, run the API inside, and call
it through `container-port` (the port reaches the student's laptop over `ssh -L`; here: its socket)."""

from __future__ import annotations

import json
import subprocess

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

# The API: busybox httpd with a CGI endpoint stands in for a Flask/FastAPI app in the offline test image.
API = "exec httpd -f -p 127.0.0.1:8080 -h /workspace/www\n"
PREDICT = """\
#!/bin/sh
printf 'Content-Type: application/json\\r\\n\\r\\n'
echo "{\\"model\\": \\"$(cat /workspace/model.txt)\\", \\"prediction\\": 42}"
"""
GET = """\
import socket, sys, time
for _ in range(50):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        s.sendall(b"GET /cgi-bin/predict HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        if data:
            print(data.decode().split("\\r\\n\\r\\n", 1)[1])
            break
    except OSError:
        pass
    time.sleep(0.2)
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["dave"])


def test_build_deploy_serve_and_call_the_api(student):
    ws = new_project(student, "model-api")
    student.write(ws / "api.py", API)
    student.write(ws / "model.txt", "sentiment-v2\n")
    student.write(ws / "www" / "cgi-bin" / "predict", PREDICT)
    assert student.sh(f"chmod 755 {ws}/www/cgi-bin/predict").returncode == 0

    # docker build -t model-api .   (in ~/workspace/model-api) -> image-create model-api
    student.ds01("image-create", "model-api", cwd=str(ws))
    # container-deploy model-api --background
    student.ds01("container-deploy", "model-api", "--background")
    # Inside container: python api.py   (left running: the shell's exit does not stop it)
    student.ds01("container-attach", "model-api", input="python api.py > /workspace/api.log 2>&1 &\nexit\n")
    # the API's port, reachable by the student (from the laptop: the printed ssh -L line)
    out = student.ds01("container-port", "model-api", "8080").stdout
    sock = student.world / "users" / str(student.user.uid) / "model-api" / "port-8080.sock"
    assert str(sock) in out and "ssh -N -L 8080:" in out
    called = subprocess.run(
        ["runuser", "-u", student.name, "--", "python3", "-c", GET, str(sock)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {"model": "sentiment-v2", "prediction": 42}
    student.ds01("container-retire", "model-api", "--yes")
