"""A model that outputs NaN, the prediction feed, and predict tokens."""

from __future__ import annotations

import hashlib
import json

from harness import wait_for
from serving_helpers import FAST_SERVING, add_version, deploy, infer_body

from agent.serving.feed import PredictionFeed

ROWS = [[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]]


def test_nan_model_answers_valid_json(worker_factory):
    def prepare(store, config):
        add_version(store, config.data_dir, "m", seed=1, nan_weights=True)
        deploy(store, "m", 1)

    worker = worker_factory(prepare)
    client = worker.client()

    response = client.post("/v2/models/m/infer", json=infer_body(ROWS, id="nan"))

    assert response.status_code == 200
    assert b"NaN" not in response.content
    body = json.loads(response.content)
    assert body["outputs"][0]["data"] == [None, None]
    assert body["outputs"][1]["data"] == [None, None, None, None]
    assert body["parameters"] == {"nonfinite_rows": [0, 1]}
    rows = wait_for(
        lambda: list(
            worker.store.db.query(
                "SELECT nonfinite, outputs_json FROM predictions ORDER BY row_index"
            )
        ),
        what="logged rows",
    )
    assert [row["nonfinite"] for row in rows] == [1, 1]
    assert json.loads(rows[0]["outputs_json"]) == {
        "label": None,
        "probabilities": [None, None],
    }
    metrics = client.get("/metrics").text
    assert 'rigdeck_serving_nonfinite_output_rows_total{model="m",version="1"} 2.0' in (
        metrics
    )


def test_feed_passes_only_finite_rows(worker_factory):
    def prepare(store, config):
        add_version(store, config.data_dir, "m", seed=1)
        deploy(store, "m", 1)

    worker = worker_factory(prepare)
    feed = PredictionFeed(worker.store)
    delivered: list[dict] = []
    feed.subscribe(delivered.extend)
    client = worker.client()
    client.post("/v2/models/m/infer", json=infer_body(ROWS, id="good"))
    client.post("/v2/models/m/versions/1/infer", json=infer_body(ROWS[:1], id="one"))
    wait_for(
        lambda: (
            worker.store.db.conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[
                0
            ]
            == 3
        ),
        what="three logged rows",
    )

    assert feed.poll() == 3

    assert [row["request_id"] for row in delivered] == ["good/0", "good/1", "one"]
    assert delivered[0]["features"] == ROWS[0]
    assert delivered[0]["model"] == "m"
    assert delivered[0]["version"] == 1
    assert set(delivered[0]["outputs"]) == {"label", "probabilities"}
    assert feed.poll() == 0


def test_feed_skips_nonfinite_rows(worker_factory):
    def prepare(store, config):
        add_version(store, config.data_dir, "m", seed=1, nan_weights=True)
        deploy(store, "m", 1)

    worker = worker_factory(prepare)
    feed = PredictionFeed(worker.store)
    delivered: list[dict] = []
    feed.subscribe(delivered.extend)
    worker.client().post("/v2/models/m/infer", json=infer_body(ROWS))
    wait_for(
        lambda: (
            worker.store.db.conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[
                0
            ]
            == 2
        ),
        what="two logged rows",
    )

    assert feed.poll() == 2
    assert delivered == []


def test_predict_token_guards_model_routes(worker_factory):
    token = "s3cret-predict-token"
    digest = hashlib.sha256(token.encode()).hexdigest()

    def prepare(store, config):
        add_version(store, config.data_dir, "m", seed=1)
        deploy(store, "m", 1)

    worker = worker_factory(
        prepare, serving=FAST_SERVING + f'predict_token_sha256 = ["{digest}"]\n'
    )
    anonymous, wrong, right = (
        worker.client(),
        worker.client("nope"),
        worker.client(token),
    )

    missing = anonymous.post("/v2/models/m/infer", json=infer_body(ROWS))
    bad = wrong.post("/v2/models/m/infer", json=infer_body(ROWS))
    good = right.post("/v2/models/m/infer", json=infer_body(ROWS))

    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated"
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_token"
    assert token not in bad.text
    assert good.status_code == 200
    assert anonymous.get("/v2/models/m").status_code == 401
    assert anonymous.get("/metrics").status_code == 401
    assert (
        anonymous.post(
            "/v2/models/m/feedback", json={"id": "x", "label": 1}
        ).status_code
        == 401
    )
    assert anonymous.get("/v2/health/live").status_code == 200
    assert anonymous.get("/v2/health/ready").status_code == 200
    assert right.get("/v2/models/m").status_code == 200
    spec = (worker.config.data_dir / "serving" / "worker.json").stat()
    assert spec.st_mode & 0o077 == 0
