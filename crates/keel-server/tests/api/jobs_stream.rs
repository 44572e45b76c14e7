//! Live job event streams (SSE): backlog then live then `end`, resume with `Last-Event-ID`
//! under many random disconnects, keep-alives, ownership, and cross-node fan-out on PostgreSQL.

use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};
use crate::jobs_helpers::{quick_manifest, spawn_jobs};

/// Events appended in the resume test (the size), in batches of `RESUME_BATCH`.
const RESUME_EVENTS: i64 = 100_000;
const RESUME_BATCH: i64 = 1_000;
/// Random client disconnects spread over the stream.
const DISCONNECTS: usize = 1_000;

/// One parsed SSE frame.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    comment: bool,
    retry: Option<u64>,
}

/// An open event stream, parsed frame by frame.
pub struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buf: String,
}

impl Sse {
    async fn open(app: &TestApp, token: &str, id: &str, last: Option<i64>) -> reqwest::Response {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/jobs/{id}/events")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(l) = last {
            req = req.header("last-event-id", l.to_string());
        }
        req.send().await.unwrap()
    }

    pub async fn connect(app: &TestApp, token: &str, id: &str, last: Option<i64>) -> Self {
        let res = Self::open(app, token, id, last).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            body: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next frame (10 s at most), `None` when the server closed the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut f = Frame::default();
                for line in raw.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        f.comment = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        f.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        f.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        f.data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        f.retry = v.trim().parse().ok();
                    }
                }
                return Some(f);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("a frame within 10 s")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// The next frame that is an event (skips retry hints and keep-alives).
    pub async fn event(&mut self) -> Option<Frame> {
        loop {
            let f = self.next().await?;
            if f.event.is_some() {
                return Some(f);
            }
        }
    }
}

pub async fn append(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.service(
        Method::POST,
        &format!("/v1/service/jobs/{id}/events"),
        Some(body),
    )
    .await
}

pub fn seq(f: &Frame) -> i64 {
    f.id.as_deref().unwrap().parse().unwrap()
}

#[tokio::test]
async fn stream_sends_backlog_then_live_events_then_end() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    for i in 0..3 {
        assert_eq!(
            append(&app, id, json!({"type": "progress", "data": {"i": i}}))
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        append(&app, id, json!({"type": "secret", "user_visible": false}))
            .await
            .status(),
        201
    );

    let mut sse = Sse::connect(&app, &token, id, None).await;
    let first = sse.next().await.unwrap();
    assert!(first.retry.is_some(), "a retry hint first: {first:?}");
    let created = sse.event().await.unwrap();
    assert_eq!(
        (seq(&created), created.event.as_deref()),
        (1, Some("state_change"))
    );
    for i in 0..3 {
        let f = sse.event().await.unwrap();
        assert_eq!(seq(&f), i + 2);
        assert_eq!(f.event.as_deref(), Some("progress"));
        let data: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(data["data"]["i"], i);
        assert_eq!(data["seq"], i + 2);
    }
    // Live: appended after the subscriber caught up; the hidden seq 5 never shows.
    assert_eq!(
        append(&app, id, json!({"type": "progress", "data": {"i": 9}}))
            .await
            .status(),
        201
    );
    let live = sse.event().await.unwrap();
    assert_eq!((seq(&live), live.event.as_deref()), (6, Some("progress")));
    let job = app.moved(&job, "running").await;
    app.moved(&job, "done").await;
    let running = sse.event().await.unwrap();
    assert_eq!(
        (seq(&running), running.event.as_deref()),
        (7, Some("state_change"))
    );
    let done = sse.event().await.unwrap();
    assert_eq!(seq(&done), 8);
    let end = sse.event().await.unwrap();
    assert_eq!(end.event.as_deref(), Some("end"));
    assert!(sse.next().await.is_none(), "the stream closes after end");

    // A finished job streams what follows the cursor, then ends at once.
    let mut again = Sse::connect(&app, &token, id, Some(6)).await;
    let seqs = [again.event().await.unwrap(), again.event().await.unwrap()];
    assert_eq!(seqs.iter().map(seq).collect::<Vec<_>>(), vec![7, 8]);
    assert_eq!(again.event().await.unwrap().event.as_deref(), Some("end"));
}

#[tokio::test]
async fn stream_sends_keepalive_comments_and_checks_access() {
    let app = spawn_full(&quick_manifest(), |s| {
        s.jobs_sse_keepalive = Duration::from_millis(50);
    })
    .await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    let mut sse = Sse::connect(&app, &token, id, None).await;
    assert_eq!(seq(&sse.event().await.unwrap()), 1);
    let mut saw_comment = false;
    for _ in 0..3 {
        saw_comment |= sse.next().await.unwrap().comment;
    }
    assert!(saw_comment, "keep-alive comments while idle");

    let (other, _) = app.user().await;
    let res = Sse::open(&app, &other, id, None).await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_of(res).await["code"], "job_not_found");
    let bad = app
        .client
        .get(app.url(&format!("/v1/jobs/{id}/events")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(error_of(bad).await["code"], "invalid_cursor");
}

#[tokio::test]
async fn resume_after_random_disconnects_has_no_gaps_or_duplicates() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap().to_owned();
    // seq 1 is the creation, then the appends, then `running` and `done`.
    let total = usize::try_from(RESUME_EVENTS + 3).unwrap();
    let mut writer = Some({
        let (base, client, id) = (app.base.clone(), app.client.clone(), id.clone());
        tokio::spawn(async move {
            for b in 0..RESUME_EVENTS / RESUME_BATCH {
                let events: Vec<Value> = (b * RESUME_BATCH..(b + 1) * RESUME_BATCH)
                    .map(|i| json!({"type": "tick", "data": {"i": i}}))
                    .collect();
                let res = client
                    .post(format!("{base}/v1/service/jobs/{id}/events"))
                    .bearer_auth(crate::helpers::SERVICE_TOKEN)
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    });
    let mut got: Vec<i64> = Vec::with_capacity(total);
    let mut last = None;
    let mut disconnects = 0;
    let mut rng = rand::thread_rng();
    // A random stretch of 1 to 149 events per connection (mean 75): the 1,000 disconnects
    // land all over the first ~75,000 events; the rest stream in one connection.
    let mut stretch = |n: usize| {
        if n < DISCONNECTS {
            rng.gen_range(1..150)
        } else {
            usize::MAX
        }
    };
    let mut ended = false;
    while !ended {
        if got.len() == total - 2 && disconnects >= DISCONNECTS {
            // Every append is in: finish the job so the stream ends.
            if let Some(w) = writer.take() {
                w.await.unwrap();
            }
            let job = app.moved(&app.job(&token, &id).await, "running").await;
            app.moved(&job, "done").await;
        }
        let mut sse = Sse::connect(&app, &token, &id, last).await;
        let take = stretch(disconnects);
        let mut read = 0;
        while read < take {
            let f = sse
                .event()
                .await
                .expect("the stream stays open until the job ends");
            if f.event.as_deref() == Some("end") {
                assert!(sse.next().await.is_none(), "the stream closes after end");
                ended = true;
                break;
            }
            let s = seq(&f);
            got.push(s);
            last = Some(s);
            read += 1;
            if got.len() == total - 2 && disconnects >= DISCONNECTS {
                break;
            }
        }
        drop(sse);
        if !ended {
            disconnects += 1;
        }
    }
    assert!(writer.is_none(), "the job ended after the writer");
    assert!(disconnects >= DISCONNECTS, "{disconnects} reconnects");
    let expected: Vec<i64> = (1..=i64::try_from(total).unwrap()).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "every seq once, in order, no gaps");
}

#[tokio::test]
async fn stream_on_another_node_sees_appends_through_postgres() {
    if std::env::var("KEEL_TEST_BACKEND").as_deref() != Ok("postgres") {
        return; // one SQLite file per node: fan-out across nodes is a PostgreSQL feature
    }
    let a = spawn_jobs().await;
    let url = a.state.settings().database_url.clone();
    let b = spawn_full(&quick_manifest(), move |s| s.database_url = url).await;
    let (token, _) = b.user().await;
    let job = b.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    let mut sse = Sse::connect(&b, &token, id, None).await;
    assert_eq!(seq(&sse.event().await.unwrap()), 1);
    assert_eq!(
        append(&a, id, json!({"type": "progress"})).await.status(),
        201
    );
    let f = sse.event().await.unwrap();
    assert_eq!((seq(&f), f.event.as_deref()), (2, Some("progress")));
    let job = a.moved(&job, "running").await;
    a.moved(&job, "done").await;
    assert_eq!(seq(&sse.event().await.unwrap()), 3);
    assert_eq!(seq(&sse.event().await.unwrap()), 4);
    assert_eq!(sse.event().await.unwrap().event.as_deref(), Some("end"));
}
