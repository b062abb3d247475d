"""The Label Studio round trip against a real Label Studio started on localhost: our label config makes a
project, our tasks (with predictions) are imported by its API, an annotation is submitted as its editor
submits one (the prediction's regions, edited), its JSON export comes back into review.json.

Label Studio is not a dependency of the project (it pins Django and ~100 packages that clash with ours),
so it runs from its own virtual environment: set SFR_JAX_LABEL_STUDIO to its `label-studio` executable
(e.g. `python3 -m venv .ls && .ls/bin/pip install label-studio==1.23.2`); without it the test is skipped
and tests/test_review_labelstudio.py checks the same round trip against Label Studio's published formats.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from sfr_jax.review import labelstudio as ls
from sfr_jax.review import record
from review_fixtures import ANNOTATED, annotate, resolved_events, write_reports

EXECUTABLE = os.environ.get("SFR_JAX_LABEL_STUDIO", "")
TOKEN = "0123456789abcdef0123456789abcdef"
FPS = 5.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not (EXECUTABLE and os.access(EXECUTABLE, os.X_OK)):
        pytest.skip("set SFR_JAX_LABEL_STUDIO to a label-studio executable (its own venv; see the docstring)")
    data_dir, port = tmp_path_factory.mktemp("ls"), _free_port()
    # --user-token is a legacy token, which Label Studio 1.23 disables unless told otherwise
    env = dict(os.environ, LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true")
    log = open(data_dir / "server.log", "w")
    process = subprocess.Popen([EXECUTABLE, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data_dir), "--username", "reviewer@example.com",
                                "--password", "reviewpass123", "--user-token", TOKEN],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 600
        while True:
            try:
                api.call("GET", "/api/projects")
                break
            except urllib.error.HTTPError:
                raise  # it answers, and refuses: no point waiting
            except (urllib.error.URLError, ConnectionError, OSError):
                assert process.poll() is None and time.time() < deadline, (data_dir / "server.log").read_text()[-3000:]
                time.sleep(2)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_round_trip_through_a_running_label_studio(label_studio, tmp_path):
    reports = write_reports(str(tmp_path / "reports"), video=False)
    tasks, codes = ls.export_tasks(reports, "/data/local-files/?d=videos/", FPS)
    project = label_studio.call("POST", "/api/projects", {"title": "sfr-jax review",
                                                            "label_config": ls.label_config(codes, FPS)})
    label_studio.call("POST", f"/api/projects/{project['id']}/import", tasks)
    listed = label_studio.call("GET", f"/api/tasks?project={project['id']}&fields=all")
    (task,) = listed["tasks"] if isinstance(listed, dict) else listed
    assert task["data"]["sfr_video"] == "seg1"
    # The annotator starts from the prediction and edits it, as in the published-format test.
    result = annotate(tasks[0]["predictions"][0]["result"])
    label_studio.call("POST", f"/api/tasks/{task['id']}/annotations", {"result": result, "was_cancelled": False})
    export = label_studio.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON")
    assert ls.import_export(export, reports, FPS) == {"seg1": 7}
    folder = os.path.join(reports, "seg1")
    review = record.load(folder)
    assert resolved_events(folder) == ANNOTATED
    assert record.fully_reviewed(review)
    # Label Studio kept our prediction: our model version, the most doubtful event's score, every region
    (prediction,) = label_studio.call("GET", f"/api/predictions?task={task['id']}")
    assert prediction["model_version"] == ls.MODEL_VERSION
    assert prediction["score"] == pytest.approx(tasks[0]["predictions"][0]["score"])
    assert [r["id"] for r in prediction["result"]] == ["e1", "e2", "e3", "e4"]
