"""The headless report pipeline: papermill -> HTML -> tables -> index and report.html, failures
rendered and counted, incremental runs, a quiet terminal, pages without machine paths or network."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from labkit import cli, config, report, report_index, results

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _notebook(path: Path, body: str, params: str = 'PROFILE = "quick"\nSEED = 0') -> Path:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# test"),
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_setup_check_notebook_smoke(smoke_report):
    out = smoke_report
    runs = json.loads((out / "runs.json").read_text())
    assert runs["00_setup_check"]["status"] == "ok", runs["00_setup_check"]["error"]
    html = (out / "html" / "00_setup_check.html").read_text()
    assert "Setup check" in html and "data:image/png;base64" in html  # figure embedded
    assert "injected-parameters" not in html and "I0000" not in html  # hidden cell, no TF log noise
    doc = json.loads((out / "results" / "00_setup_check.json").read_text())
    assert doc["notebook"] == "00_setup_check" and doc["profile"] == "smoke"
    assert all(row["ok"] for row in doc["rows"]) and len(doc["rows"]) >= 6
    csv = (out / "tables" / "00_setup_check.csv").read_text().splitlines()
    assert csv[0].startswith("check,ok,seconds,detail") and len(csv) == len(doc["rows"]) + 1
    assert (out / "figures" / "00_weather_two_days.png").stat().st_size > 5_000
    index = (out / "index.html").read_text()
    assert 'id="nb-00_setup_check"' in index and 'href="html/00_setup_check.html"' in index
    assert "checks passed" in index and 'class="card failed"' not in index
    assert len(list((out / "html").glob("*.html"))) == len(report.discover())  # every notebook rendered


def test_failing_notebook_is_rendered_and_others_still_run(tmp_path, monkeypatch):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_fails.ipynb", "raise ValueError('deliberate failure for the test')")
    _notebook(nbdir / "02_works.ipynb",
              "from labkit import results\nresults.record('02_works', [{'profile': PROFILE, 'x': 1}], key={'x': 1})")
    out = tmp_path / "rep"
    runs = report.run_report("smoke", output=out, notebooks=nbdir)
    assert [(r.name, r.status) for r in runs] == [("01_fails", "failed"), ("02_works", "ok")]
    assert "ValueError: deliberate failure" in runs[0].error and "\x1b[" not in runs[0].error  # no colour codes
    page = (out / "html" / "01_fails.html").read_text()
    assert "deliberate failure for the test" in page and f'id="{runs[0].error_cell}"' in page
    assert (out / "tables" / "02_works.md").read_text().count("| smoke | 1 |") == 1
    index = (out / "index.html").read_text()
    assert 'class="card failed"' in index and f'href="html/01_fails.html#{runs[0].error_cell}"' in index
    assert report.manifest.load(out)["01_fails"]["status"] == "failed"  # kept for the index, never as good

    monkeypatch.setattr(report, "notebooks_dir", lambda: nbdir)
    assert cli.main(["report", "--profile", "smoke", "--only", "02", "--output", str(out)]) == 0
    index = (out / "index.html").read_text()  # 01 was not selected: still shown, as failed last time
    assert 'class="card failed" id="nb-01_fails"' in index and "its last run" in index
    assert cli.main(["report", "--profile", "smoke", "--only", "01", "--output", str(out)]) == 1
    assert "(last run failed)" in (out / "logs" / "01_fails.log").read_text().splitlines()[0]  # ran again


def test_a_failed_run_never_publishes_earlier_tables_or_another_profiles(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("LABKIT_DATA", str(data))
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_flaky.ipynb",
              "from labkit import config, results\n"
              "if (config.data_dir() / 'break').exists():\n    raise RuntimeError('broken on purpose')\n"
              "results.record('01_flaky', [{'profile': PROFILE, 'value': 42}], headline='Flaky numbers')")
    out = tmp_path / "rep"
    run = dict(output=out, notebooks=nbdir, echo=lambda m: None, progress=False)
    assert report.run_report("quick", **run)[0].status == "ok"
    assert "| quick | 42 |" in (out / "tables" / "01_flaky.md").read_text()
    assert 'id="table-01_flaky"' in (out / "index.html").read_text()  # a course summary table

    (data / "break").write_text("")
    assert report.run_report("quick", force=True, **run)[0].status == "failed"
    assert not (out / "results" / "01_flaky.json").exists()          # the earlier run's result is gone
    assert not list((out / "tables").glob("01_flaky.*"))             # and so are its tables
    assert 'id="table-01_flaky"' not in (out / "index.html").read_text()
    assert 'id="table-01_flaky"' not in (out / "report.html").read_text()

    (data / "break").unlink()
    assert report.run_report("quick", force=True, **run)[0].status == "ok"
    doc = json.loads((out / "results" / "01_flaky.json").read_text())
    # a table left by a run under another profile is not published as this profile's
    (out / "results" / "01_other.json").write_text(json.dumps({**doc, "table": "01_other", "profile": "full"}))
    runs = report.run_report("quick", **run)
    assert runs[0].cached and [d["table"] for d in report.current_results(out, runs, "quick")] == ["01_flaky"]
    assert (out / "tables" / "01_flaky.md").exists() and not list((out / "tables").glob("01_other.*"))


def test_discover_rejects_unknown_selection():
    with pytest.raises(ValueError, match="no notebook matches"):
        report.discover(["42"])


def _reasons(runs) -> dict[str, str]:
    return {r.name: "cached" if r.cached else r.reason for r in runs}


def test_incremental_runs_follow_every_input(tmp_path, monkeypatch):
    """A notebook runs again when its source, parameters, labkit, a file it read, an upstream result
    or one of its outputs changed; otherwise it is cached, also across a touched-but-equal file."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("LABKIT_DATA", str(data))
    (data / "input.txt").write_text("hello")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_make.ipynb", "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
              "from labkit import config, plots, results\ntext = (config.data_dir() / 'input.txt').read_text()\n"
              "fig, ax = plt.subplots()\nax.plot([0, len(text)])\nax.set_title('length of the input')\n"
              "plots.save_fig(fig, '01_length')\n"
              "results.record('01_made', [{'n': len(text), 'seed': SEED}], key={'n': len(text)})")
    use = nbdir / "02_use.ipynb"
    _notebook(use, "from labkit import results\nn = results.load('01_made')['rows'][0]['n']\n"
              "results.record('02_used', [{'twice': 2 * n}], key={'twice': 2 * n})")
    out = tmp_path / "rep"

    def run(**kw):
        return _reasons(report.run_report("smoke", output=out, notebooks=nbdir, echo=lambda m: None, **kw))

    assert run() == {"01_make": "no earlier run", "02_use": "no earlier run"}
    runs = report.run_report("smoke", output=out, notebooks=nbdir, echo=lambda m: None)
    assert _reasons(runs) == {"01_make": "cached", "02_use": "cached"}
    assert runs[1].key == {"twice": 10} and runs[0].figures == ["01_length.png"] and runs[0].seconds > 0
    index = (out / "index.html").read_text()
    assert index.count('<span class="pill cached">cached</span>') == 2 and "length of the input" in index

    stat = (data / "input.txt").stat()
    os.utime(data / "input.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched, same bytes
    nb = nbformat.read(str(use), as_version=4)
    nb.cells[-1].source += "\nprint('edited')"
    nbformat.write(nb, str(use))
    assert run() == {"01_make": "cached", "02_use": "notebook changed"}
    (data / "input.txt").write_text("hello, world")  # the data 01 reads, hence the result 02 reads
    assert run() == {"01_make": "input changed: data/input.txt",
                     "02_use": "input changed: reports/results/01_made.json"}
    assert results.load("02_used", out / "results")["key"] == {"twice": 24}

    (out / "figures" / "01_length.png").unlink()
    assert run(only=["01"]) == {"01_make": "output figures/01_length.png missing"}
    assert run(only=["02"], force=True) == {"02_use": "--force"}
    assert run(only=["02"], seed=1) == {"02_use": "parameters changed"}
    monkeypatch.setattr(report.manifest, "labkit_digest", lambda report_side=False: f"edited-{report_side}")
    assert run(only=["02"], seed=1) == {"02_use": "labkit source changed"}


def test_terminal_stays_quiet_and_logs_keep_everything(tmp_path, capfd):
    """One progress bar and one summary line: no TensorFlow C++ lines, no papermill parse warnings,
    no ipykernel TCP or KeyboardInterrupt messages; the full log is in logs/."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_tf.ipynb", "import labkit\nimport tensorflow as tf\nprint(tf.constant(2) * 21)",
              params='PROFILE = "quick"   # smoke = seconds, quick = the default\nSEED = 0')
    out = tmp_path / "rep"
    runs = report.run_report("smoke", output=out, notebooks=nbdir)
    assert runs[0].status == "ok", runs[0].error
    captured = capfd.readouterr()
    assert captured.out.splitlines() == [captured.out.strip()] and captured.out.startswith("report (smoke): 1/1 ok")
    noise = [ln for ln in re.split(r"[\r\n]+", captured.err) if ln.strip() and not ln.startswith("report (smoke)")]
    assert noise == []
    log = (out / "logs" / "01_tf.log").read_text()
    assert "Executing notebook with kernel" in log and "over TCP" not in log  # ipc transport
    assert "Unable to parse line 1" in log  # this test's comment has a second '=': logged, not printed
    html = (out / "html" / "01_tf.html").read_text()
    assert "tf.Tensor(42" in html and "I0000" not in html and "absl::InitializeLog" not in html


def test_headline_tables_are_recorded_and_ordered(tmp_reports):
    results.record("t_forecast", [{"model": "fc_mlp", "T MAE": 0.2}], headline="Forecasting", headline_order=20)
    results.record("t_claims", [{"id": "K1", "holds": True}, {"id": "K2", "holds": False}], headline="Claims",
                   headline_order=0)
    results.record("t_plain", [{"x": 1}])
    with pytest.raises(ValueError, match="headline must be a non-empty title"):
        results.record("t_bad", [{"x": 1}], headline="  ")
    docs = results.load_all()
    assert [d["table"] for d in report_index.headline_docs(docs)] == ["t_claims", "t_forecast"]
    assert results.load("t_plain")["headline"] is None and results.load("t_claims")["machine"]["cores"] >= 1
    table = report_index.table_html(results.load("t_claims")["rows"])
    assert '<td class="yes">yes</td>' in table and '<td class="no">no</td>' in table
    reasons = report_index.table_html([{"id": "K2", "why_not": "size: " + "x" * 90, "margin": -0.52},
                                       {"id": "K3", "why_not": None, "margin": 0.01}])
    assert '<td class="long">size: x' in reasons and '<td class="na long">' in reasons  # the column keeps a width
    assert '<td>K2</td>' in reasons and '<td class="num">-0.52</td>' in reasons
    assert oct((tmp_reports / "results" / "t_plain.json").stat().st_mode & 0o777) != "0o600"  # readable pages


def _machine_paths(out: Path) -> list[str]:
    paths = {str(REPO), str(REPO.resolve()), str(out), str(out.resolve()), str(config.data_dir()), sys.prefix}
    home = str(Path.home())
    if home not in ("/", ""):
        paths.add(home)
    return sorted(paths, key=len, reverse=True)


def test_pages_have_dashboard_toc_toggle_and_no_machine_paths(smoke_report):
    out = smoke_report
    pages = [out / "index.html", out / "report.html", *sorted((out / "html").glob("*.html"))]
    texts = {p: p.read_text(encoding="utf-8") for p in pages}
    texts.update({p: p.read_text(encoding="utf-8") for p in (out / "executed").glob("*.ipynb")})
    for path, text in texts.items():
        leaked = [m for m in _machine_paths(out) if m in text]
        assert not leaked, f"{path.name} shows the machine path(s) {leaked}"
        assert "PosixPath(" not in text, f"{path.name}: a stray Out[n]: PosixPath(...)"
        noise = re.search(r"[IWE]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\]|absl::InitializeLog", text)
        assert not noise, f"{path.name} shows TensorFlow's C++ start-up line {noise.group(0)!r}"  # the log keeps it
        if path.suffix == ".html":
            assert not re.search(r"<script[^>]+src=", text), f"{path.name} loads a script"
            assert "colab-badge.svg" not in text and "cdnjs" not in text and "unpkg" not in text
    page = texts[out / "html" / "01_preprocessing.html"]
    assert '<nav class="labkit-toc"' in page and 'id="labkit-code-toggle"' in page
    assert 'class="labkit-badge" href="https://colab.research.google.com/' in page
    assert "Interactive widget" in page  # the explorer: where it runs, then its first view
    assert not re.search(r"[HV]Box\(children|FloatProgress\(", page)  # no widget reprs (tqdm bars became text)
    assert "ran with PROFILE = &#x27;smoke&#x27;" in page or "ran with PROFILE = 'smoke'" in page
    index = texts[out / "index.html"]
    for label in ("profile", "seed", "git commit", "CPU", "GPU", "versions"):
        assert f"<b>{label}</b>" in index
    order = [index.index(t) for t in ("Course summary: keyword spotting on MFCC features",
                                      "Course summary: temperature and humidity forecasting",
                                      "Constraint presets: does the best configuration meet each limit?")]
    assert order == sorted(order) and order[-1] < index.index('<h2>Notebooks</h2>')
    names = [p.stem for p in report.discover()]
    assert all(f'id="nb-{n}"' in index for n in names)
    assert '<figure><a href="figures/01_frame_length.png"><img src="figures/01_frame_length.png"' in index
    single = texts[out / "report.html"]
    assert all(f'id="nb-{n}"' in single for n in names) and 'id="nb01-cell-id=' in single
    local = [u for u in re.findall(r'(?:src|href)="([^"#][^"]*)"', single) if not u.startswith(("data:", "http"))]
    assert local == [], f"report.html links outside itself: {local[:5]}"


_TIMED = ("import os, time\nfrom labkit import results\nt0 = time.time()\ntime.sleep(2)\n"
          "results.record(os.environ['LABKIT_NOTEBOOK'], [{'start': t0, 'end': time.time(), 'pid': os.getpid(), "
          "'threads': os.environ.get('TF_NUM_INTRAOP_THREADS'), 'jobs': os.environ.get('LABKIT_REPORT_JOBS')}])")


def test_notebooks_run_side_by_side_when_what_they_read_is_done(tmp_path, monkeypatch):
    """--jobs 2: two notebooks that need nothing run at the same time; a notebook starts only after the one
    it needs; every kernel gets one TensorFlow thread. --jobs 1: one after the other, in order."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _notebook(nbdir / f"{name}.ipynb", _TIMED)
    monkeypatch.setattr(report, "NEEDS", {"01_a": (), "02_b": (), "03_c": ("01_a",)})
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)

    def spans(jobs: int) -> dict[str, dict]:
        out = tmp_path / f"rep{jobs}"
        runs = report.run_report("smoke", output=out, notebooks=nbdir, echo=lambda m: None, progress=False, jobs=jobs)
        assert [r.name for r in runs] == ["01_a", "02_b", "03_c"] and all(r.status == "ok" for r in runs), runs
        assert f"{jobs} notebook" in (out / "index.html").read_text()
        return {n: results.load(n, out / "results")["rows"][0] for n in ("01_a", "02_b", "03_c")}

    two = spans(2)
    a, b, c = two["01_a"], two["02_b"], two["03_c"]
    assert a["start"] < b["end"] and b["start"] < a["end"], "01_a and 02_b should overlap"
    assert c["start"] >= a["end"] and len({a["pid"], b["pid"], c["pid"]}) == 3
    assert {r["threads"] for r in two.values()} == {"1"} and {r["jobs"] for r in two.values()} == {"2"}
    one = spans(1)
    assert one["01_a"]["end"] <= one["02_b"]["start"] and one["02_b"]["end"] <= one["03_c"]["start"]
    assert {r["threads"] for r in one.values()} == {"1"}, "the numbers must not depend on --jobs"


def test_prerequisites_follow_needs_the_selection_and_jobs():
    paths = [Path(f"{n}.ipynb") for n in ("00_setup_check", "01_preprocessing", "03_training_kws", "08_tradeoffs",
                                          "09_claims", "10_new")]
    two = report.prerequisites(paths)
    assert two["01_preprocessing"] == set() and two["00_setup_check"] == set()  # neither waits for 03
    assert two["08_tradeoffs"] == {"03_training_kws"}  # 04 is not selected
    assert two["09_claims"] == {"03_training_kws", "08_tradeoffs"}  # not 00 and 01, whose results it does not read
    assert two["10_new"] == {p.stem for p in paths[:5]}  # not in NEEDS: every notebook before it
    one = report.prerequisites(paths, jobs=1)
    assert all(one[p.stem] == {q.stem for q in paths[:i]} for i, p in enumerate(paths))
    assert set(report.NEEDS) <= {p.stem for p in report.discover()}, "NEEDS names a notebook that does not exist"


def test_needs_cover_the_results_each_notebook_read(smoke_report):
    """Every recorded result a notebook of the smoke report read (its read trace) comes from a notebook it
    waits for, directly or through another one: running side by side cannot hand it a stale table."""
    paths = report.discover()
    needs = report.prerequisites(paths)

    def closure(name: str) -> set[str]:
        out, todo = set(), list(needs[name])
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(needs[n])
        return out

    checked = 0
    for p in paths:
        trace = (smoke_report / "logs" / f"{p.stem}.reads").read_text().splitlines()
        for line in trace:
            kind, _, file = line.partition("\t")
            f = Path(file)
            if kind != "file" or f.parent != smoke_report / "results" or f.name.startswith(".") or not f.exists():
                continue
            writer = json.loads(f.read_text())["notebook"]
            if writer != p.stem:
                checked += 1
                assert writer in closure(p.stem), f"{p.stem} read {f.name} of {writer} but does not wait for it"
    assert checked >= 5  # 09 reads the rows 05 recorded and the tables of 03, 04, 06 and 07 behind the claims
