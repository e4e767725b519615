"""Game-day reports: stored run data -> report.json, junit.xml and a self-contained index.html.

- `record`: what a run directory holds (the only input);
- `series`, `windows`, `findings`, `score`, `trends`: pure computations;
- `svg`, `page`, `junit`: rendering; `scrub`: no secret in any file;
- `build`: all of it for one run directory; `notify`: Slack/webhook, off by default;
- `cli`: `resilience report RUN_ID`.
"""
