// Models: the tenant's built-in models (versions, held-out metrics with a
// calibration plot, which one serves; train and roll back for analysts and
// admins) and the shared models served at /predict with their calibration;
// feature drift for both (the built-ins': their active version's rows on
// this server).
import { useMemo, useState } from "preact/hooks";
import { api, ApiError, errorText } from "../api";
import { calibrationError, calibrationPoints, shownVersion } from "../calibration";
import { ChartView } from "../chartview";
import { driftView } from "../drift";
import { count, dateTime, humanize } from "../format";
import { can } from "../roles";
import { useSession } from "../state";
import { Badge, Card, Empty, ErrorNote, Loading, PageHead, toast, useAsync } from "../ui";

// Predicted (x) against observed (y) per held-out bin, with the diagonal a
// perfectly calibrated model would sit on; point size follows the bin's rows.
function CalibrationPlot(p: { bins: unknown; name: string; testid: string }) {
  const pts = useMemo(() => calibrationPoints(p.bins), [p.bins]);
  const cfg = useMemo(() => {
    if (!pts?.length) return null;
    const most = Math.max(...pts.map((x) => x.count));
    return {
      type: "scatter",
      data: {
        datasets: [
          { type: "line", label: "Perfect calibration", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#9aa3b2", borderDash: [5, 4], borderWidth: 1, pointRadius: 0 },
          { type: "line", label: "Model", data: pts, clip: 8, borderColor: "#2f6fde", backgroundColor: "#2f6fde", borderWidth: 2,
            pointRadius: pts.map((x) => 3 + 5 * Math.sqrt(x.count / most)) },
        ],
      },
      options: {
        scales: {
          x: { type: "linear", min: 0, max: 1, title: { display: true, text: "Predicted probability" } },
          y: { type: "linear", min: 0, max: 1, title: { display: true, text: "Observed rate" } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c: any) => c.datasetIndex === 0 ? "" : `predicted ${(c.raw.x * 100).toFixed(1)}% · observed ${(c.raw.y * 100).toFixed(1)}% · ${c.raw.count} rows` } },
        },
      },
    };
  }, [pts]);
  if (!pts || !cfg) return null;
  const ece = calibrationError(pts);
  return (
    <figure class="calibration" data-testid={p.testid}>
      <ChartView config={cfg as any} height={200} testid={p.testid + "-chart"}
        label={`Calibration of ${p.name} on held-out rows: ` + pts.map((x) => `predicted ${(x.x * 100).toFixed(0)}% observed ${(x.y * 100).toFixed(0)}% (${x.count})`).join("; ")} />
      <figcaption class="muted small">Calibration on held-out rows: predicted vs observed per 10-point bin (dashed: perfect){ece == null ? "" : ` · ECE ${ece.toFixed(3)}`}</figcaption>
    </figure>
  );
}

// PSI per feature of the rows a model scored against its training rows,
// worst first (at most 20), each with its band.
function DriftTable(p: { drift: unknown; caption: (rows: number) => string; testid: string }) {
  const v = driftView(p.drift);
  if (!v) return null;
  return (
    <div class="table-wrap" data-testid={p.testid}>
      <table class="table">
        <caption>{p.caption(v.rows)}</caption>
        {v.features.length > 0 && <thead><tr><th scope="col">Feature</th><th scope="col">PSI</th><th scope="col">Status</th></tr></thead>}
        <tbody>
          {v.features.map((r) => (
            <tr><td>{r.feature}</td><td>{r.psi == null ? "—" : r.psi.toFixed(3)}</td><td>{r.status == null ? "—" : <Badge tone={r.status === "stable" ? "good" : r.status === "shifting" ? "warn" : "bad"}>{r.status}</Badge>}</td></tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const METRIC_ORDER = ["auc", "logloss", "brier", "ece", "rmse", "mae", "rmse_original", "mae_original"];

function fmtMetric(k: string, v: unknown): string {
  if (typeof v !== "number") return String(v ?? "—");
  if (k.endsWith("_original")) return "$" + Math.round(v).toLocaleString("en-US");
  return v.toFixed(3);
}

export function ModelsPage() {
  const s = useSession()!;
  const train = can(s.user.role, "models.train");
  const builtin = useAsync<any>(() => api("/v1/builtin-models"), []);
  const shared = useAsync<any>(() => api("/models"), []);
  const [busy, setBusy] = useState("");
  async function doTrain(name: string) {
    setBusy(name);
    try {
      const r = await api(`/v1/models/${name}/train`, { method: "POST", body: {} });
      toast(`${humanize(name)} v${r.version ?? ""} trained`, "good");
      builtin.reload();
    } catch (e) {
      if (e instanceof ApiError && e.code === "not_enough_outcomes") toast(e.message, "warn");
      else toast(errorText(e), "bad");
    } finally {
      setBusy("");
    }
  }
  async function activate(name: string, version: number) {
    setBusy(name);
    try {
      await api(`/v1/builtin-models/${name}/activate`, { method: "POST", body: { version } });
      toast(`${humanize(name)} now serves v${version}`, "good");
      builtin.reload();
    } catch (e) {
      toast(errorText(e), "bad");
    } finally {
      setBusy("");
    }
  }
  return (
    <div class="page">
      <PageHead title="Models" subtitle="What scores your leads, how well, and which version serves" />
      {builtin.error && !builtin.data ? <ErrorNote error={builtin.error} retry={builtin.reload} /> : !builtin.data ? <Loading /> : (
        <div class="grid grid-cards">
          {builtin.data.models.map((m: any) => (
            <Card
              title={humanize(m.name)}
              subtitle={m.serving === "prior" ? "Serving the points prior (not trained yet)" : m.serving === "model" ? `Serving v${m.active_version}` : "Nothing serves yet"}
              actions={train && m.name !== "property_match" && (
                <button class="btn btn-small btn-primary" type="button" disabled={!!busy} onClick={() => doTrain(m.name)} data-testid={"train-" + m.name}>
                  {busy === m.name ? "Training…" : "Train"}
                </button>
              )}
            >
              {!m.versions?.length ? <Empty>No trained version yet.</Empty> : (
                <div class="table-wrap">
                  <table class="table">
                    <caption class="sr-only">{humanize(m.name)} versions</caption>
                    <thead><tr><th scope="col">Version</th><th scope="col">Rows</th>{METRIC_ORDER.filter((k) => m.versions.some((v: any) => v.metrics?.[k] != null)).map((k) => <th scope="col">{k.toUpperCase().replace("_ORIGINAL", " ($)")}</th>)}<th scope="col">Trained</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
                    <tbody>
                      {m.versions.map((v: any) => (
                        <tr>
                          <td>v{v.version} {v.active && <Badge tone="good">active</Badge>}</td>
                          <td>{v.rows ?? "—"}</td>
                          {METRIC_ORDER.filter((k) => m.versions.some((x: any) => x.metrics?.[k] != null)).map((k) => <td>{fmtMetric(k, v.metrics?.[k])}</td>)}
                          <td class="nowrap">{v.trained_at ? dateTime(Date.parse(v.trained_at)) : "—"}{v.trained_by ? " · " + v.trained_by : ""}</td>
                          <td>{train && !v.active && <button type="button" class="btn btn-small" disabled={!!busy} onClick={() => activate(m.name, v.version)}>{v.version < (m.active_version ?? 0) ? "Roll back" : "Activate"}</button>}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              {(() => {
                const v = shownVersion<any>(m.versions);
                return v?.metrics?.calibration ? <CalibrationPlot bins={v.metrics.calibration} name={`${humanize(m.name)} v${v.version}`} testid={"calibration-" + m.name} /> : null;
              })()}
              {m.serving === "model" && <DriftTable drift={m.drift} testid={"drift-builtin-" + m.name}
                caption={(rows) => rows ? `Drift: PSI of the ${count(rows)} rows v${m.active_version} scored on this server since it was activated here, against its training rows`
                  : `Drift: v${m.active_version} has scored no rows on this server since it was activated here`} />}
            </Card>
          ))}
        </div>
      )}
      <h2 class="section-title">Shared models</h2>
      {shared.error && !shared.data ? <ErrorNote error={shared.error} retry={shared.reload} /> : !shared.data ? <Loading /> : !shared.data.models?.length ? (
        <Empty>No shared model is served (train one with <code>ehub train</code> or import one with <code>ehub model import</code>).</Empty>
      ) : (
        <div class="grid grid-cards">
          {shared.data.models.map((m: any) => (
            <Card title={`${m.name} v${m.version}`} subtitle={`${m.task || ""} · ${m.trees ?? "?"} trees`}>
              <p class="small">{Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number").slice(0, 6).map(([k, v]) => `${k} ${(v as number).toFixed(3)}`).join(" · ")}</p>
              {m.metrics?.calibration && <CalibrationPlot bins={m.metrics.calibration} name={`${m.name} v${m.version}`} testid={"calibration-shared-" + m.name} />}
              <DriftTable drift={m.drift} testid={"drift-" + m.name}
                caption={(rows) => `Drift: PSI of the ${count(rows)} rows scored since this version started, against training`} />
            </Card>
          ))}
        </div>
      )}
      <p class="muted small note">Drift: every row a model scores is binned like its training rows (PSI below 0.1 stable, 0.1–0.25 shifting, above drifted). A built-in model's figures are this server's, since its version was activated here; its time features (age, days since) are read as of each outcome in training and as of now when scoring, so they drift as open leads age.</p>
    </div>
  );
}
