// Sequences and templates: the list, an editor for a sequence's steps and
// a template's text, and a preview rendered by the server (with a lead's
// values, or sample ones) including SMS encoding and segments.
import { useLayoutEffect, useState } from "preact/hooks";
import { api, errorText, listAll } from "../api";
import { can } from "../roles";
import { useSession } from "../state";
import { Badge, Card, Empty, ErrorNote, Loading, PageHead, toast, useAsync } from "../ui";

interface Step { type: "sms" | "email" | "wait" | "task"; template?: string; minutes?: number; text?: string }
interface Sequence { id: number; name: string; start_on: string; active: boolean; steps: Step[]; version: number }
interface Template { id: number; name: string; channel: "sms" | "email"; subject: string | null; body: string; marketing: boolean; version: number }

function stepText(s: Step): string {
  if (s.type === "wait") {
    const m = s.minutes || 0;
    return "Wait " + (m >= 1440 && m % 1440 === 0 ? m / 1440 + " d" : m >= 60 && m % 60 === 0 ? m / 60 + " h" : m + " min");
  }
  if (s.type === "task") return "Task: " + (s.text || "");
  return (s.type === "sms" ? "SMS" : "E-mail") + ": " + (s.template || "?");
}

export function SequencesPage() {
  const s = useSession()!;
  const canWrite = can(s.user.role, "sequences.write");
  const seqs = useAsync(() => listAll<Sequence>("/v1/sequences", 1000), []);
  const tpls = useAsync(() => listAll<Template>("/v1/templates", 1000), []);
  const [editSeq, setEditSeq] = useState<Sequence | "new" | null>(null);
  const [editTpl, setEditTpl] = useState<Template | "new" | null>(null);
  return (
    <div class="page">
      <PageHead title="Sequences" subtitle="Automatic SMS and e-mail follow-up" />
      <div class="grid grid-2">
        <Card title="Sequences" actions={canWrite && <button class="btn btn-small btn-primary" type="button" onClick={() => setEditSeq("new")}>New sequence</button>}>
          {seqs.error && !seqs.data ? <ErrorNote error={seqs.error} retry={seqs.reload} /> : !seqs.data ? <Loading /> : !seqs.data.length ? <Empty>No sequences yet.</Empty> : (
            <ul class="list">
              {seqs.data.map((q) => (
                <li class="list-item">
                  <div class="list-main">
                    <strong>{q.name}</strong>
                    <span class="chips">
                      <Badge tone={q.active ? "good" : "neutral"}>{q.active ? "active" : "paused"}</Badge>
                      <Badge tone="info">{q.start_on === "new_lead" ? "starts on new lead" : "manual"}</Badge>
                    </span>
                    <ol class="steps-inline">{q.steps.map((st) => <li>{stepText(st)}</li>)}</ol>
                  </div>
                  {canWrite && <button class="btn btn-small" type="button" onClick={() => setEditSeq(q)} aria-label={"Edit " + q.name}>Edit</button>}
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Templates" actions={canWrite && <button class="btn btn-small btn-primary" type="button" onClick={() => setEditTpl("new")}>New template</button>}>
          {tpls.error && !tpls.data ? <ErrorNote error={tpls.error} retry={tpls.reload} /> : !tpls.data ? <Loading /> : !tpls.data.length ? <Empty>No templates yet.</Empty> : (
            <ul class="list">
              {tpls.data.map((t) => (
                <li class="list-item">
                  <div class="list-main">
                    <strong>{t.name}</strong>
                    <span class="chips"><Badge tone="info">{t.channel}</Badge>{t.marketing && <Badge>marketing</Badge>}</span>
                    <p class="muted small clamp">{t.subject ? t.subject + " — " : ""}{t.body}</p>
                  </div>
                  <button class="btn btn-small" type="button" data-testid="template-open" onClick={() => setEditTpl(t)} aria-label={(canWrite ? "Edit " : "Preview ") + t.name}>{canWrite ? "Edit" : "Preview"}</button>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
      {editSeq && <SequenceEditor seq={editSeq === "new" ? null : editSeq} templates={tpls.data || []} onClose={(changed) => { setEditSeq(null); if (changed) seqs.reload(); }} />}
      {editTpl && <TemplateEditor tpl={editTpl === "new" ? null : editTpl} canWrite={canWrite} onClose={(changed) => { setEditTpl(null); if (changed) tpls.reload(); }} />}
    </div>
  );
}

function Modal(p: { title: string; onClose: () => void; children: any }) {
  // a layout effect: focus and keys belong to the dialog from the moment it
  // is in the page, not from the next paint
  useLayoutEffect(() => {
    // Escape closes; Tab stays inside the dialog; on close, focus goes back
    // to what opened it (the Edit / New button).
    const opener = document.activeElement as HTMLElement | null;
    const k = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.preventDefault();
        p.onClose();
      } else if (e.key === "Tab") {
        const all = [...document.querySelectorAll<HTMLElement>(".modal a[href], .modal button:not([disabled]), .modal input:not([disabled]), .modal select:not([disabled]), .modal textarea:not([disabled])")];
        if (!all.length) return;
        const i = all.indexOf(document.activeElement as HTMLElement);
        if (e.shiftKey && i <= 0) {
          e.preventDefault();
          all[all.length - 1].focus();
        } else if (!e.shiftKey && (i === -1 || i === all.length - 1)) {
          e.preventDefault();
          all[0].focus();
        }
      }
    };
    document.addEventListener("keydown", k);
    // the first field that can take focus (a read-only preview has none:
    // then its first button)
    const first =
      document.querySelector<HTMLElement>(".modal input:not([disabled]), .modal select:not([disabled]), .modal textarea:not([disabled])") ||
      document.querySelector<HTMLElement>(".modal button:not([disabled])");
    first?.focus();
    return () => {
      document.removeEventListener("keydown", k);
      if (opener && opener.isConnected) opener.focus();
    };
  }, []);
  return (
    <div class="modal-back" onClick={(e) => e.target === e.currentTarget && p.onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={p.title}>
        <header class="card-head">
          <h2>{p.title}</h2>
          <button type="button" class="btn btn-ghost btn-small" onClick={p.onClose} aria-label="Close">✕</button>
        </header>
        {p.children}
      </div>
    </div>
  );
}

function SequenceEditor(p: { seq: Sequence | null; templates: Template[]; onClose: (changed: boolean) => void }) {
  const [name, setName] = useState(p.seq?.name || "");
  const [startOn, setStartOn] = useState(p.seq?.start_on || "manual");
  const [active, setActive] = useState(p.seq?.active ?? true);
  const [steps, setSteps] = useState<Step[]>(p.seq?.steps ? p.seq.steps.map((s) => ({ ...s })) : [{ type: "sms", template: p.templates.find((t) => t.channel === "sms")?.name }]);
  const [err, setErr] = useState("");
  const upd = (i: number, s: Partial<Step>) => setSteps(steps.map((x, j) => (j === i ? ({ ...x, ...s } as Step) : x)));
  async function save(e: Event) {
    e.preventDefault();
    setErr("");
    const clean = steps.map((s) => s.type === "wait" ? { type: "wait", minutes: Number(s.minutes) || 0 } : s.type === "task" ? { type: "task", text: s.text || "" } : { type: s.type, template: s.template || "" });
    try {
      const body = { name, start_on: startOn, active, steps: clean };
      if (p.seq) await api(`/v1/sequences/${p.seq.id}`, { method: "PATCH", body, headers: { "If-Match": `"v${p.seq.version}"` } });
      else await api(`/v1/sequences`, { method: "POST", body });
      toast("Sequence saved", "good");
      p.onClose(true);
    } catch (e2) {
      setErr(errorText(e2));
    }
  }
  return (
    <Modal title={p.seq ? "Edit sequence" : "New sequence"} onClose={() => p.onClose(false)}>
      <form class="form" onSubmit={save}>
        <label class="field"><span>Name</span><input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        <div class="row-fields">
          <label class="field"><span>Starts</span>
            <select value={startOn} onChange={(e) => setStartOn((e.target as HTMLSelectElement).value)}>
              <option value="manual">When enrolled by hand</option>
              <option value="new_lead">On every new lead</option>
            </select>
          </label>
          <label class="check"><input type="checkbox" checked={active} onChange={(e) => setActive((e.target as HTMLInputElement).checked)} /> Active</label>
        </div>
        <fieldset class="steps-edit">
          <legend>Steps</legend>
          {steps.map((s, i) => (
            <div class="step-edit">
              <span class="step-n">{i + 1}</span>
              <label class="field"><span class="sr-only">Step {i + 1} type</span>
                <select value={s.type} onChange={(e) => upd(i, { type: (e.target as HTMLSelectElement).value as Step["type"] })}>
                  <option value="sms">SMS</option><option value="email">E-mail</option><option value="wait">Wait</option><option value="task">Task</option>
                </select>
              </label>
              {(s.type === "sms" || s.type === "email") && (
                <label class="field field-grow"><span class="sr-only">Step {i + 1} template</span>
                  <select value={s.template || ""} onChange={(e) => upd(i, { template: (e.target as HTMLSelectElement).value })}>
                    <option value="">Template…</option>
                    {p.templates.filter((t) => t.channel === s.type).map((t) => <option value={t.name}>{t.name}</option>)}
                  </select>
                </label>
              )}
              {s.type === "wait" && <label class="field field-grow"><span class="sr-only">Step {i + 1} minutes</span><input type="number" min={1} value={s.minutes ?? 60} onInput={(e) => upd(i, { minutes: Number((e.target as HTMLInputElement).value) })} aria-describedby="min-hint" /></label>}
              {s.type === "task" && <label class="field field-grow"><span class="sr-only">Step {i + 1} task</span><input value={s.text || ""} placeholder="What to do" onInput={(e) => upd(i, { text: (e.target as HTMLInputElement).value })} /></label>}
              <button type="button" class="btn btn-ghost btn-small" aria-label={`Remove step ${i + 1}`} onClick={() => setSteps(steps.filter((_, j) => j !== i))}>✕</button>
            </div>
          ))}
          <span id="min-hint" class="sr-only">minutes</span>
          {steps.length < 20 && <button type="button" class="btn btn-small" onClick={() => setSteps([...steps, { type: "wait", minutes: 1440 }])}>Add step</button>}
        </fieldset>
        {err && <p class="error-note" role="alert">{err}</p>}
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => p.onClose(false)}>Cancel</button>
          <button type="submit" class="btn btn-primary">Save</button>
        </div>
      </form>
    </Modal>
  );
}

function TemplateEditor(p: { tpl: Template | null; canWrite: boolean; onClose: (changed: boolean) => void }) {
  const t = p.tpl;
  const [name, setName] = useState(t?.name || "");
  const [channel, setChannel] = useState<"sms" | "email">(t?.channel || "sms");
  const [subject, setSubject] = useState(t?.subject || "");
  const [body, setBody] = useState(t?.body || "");
  const [marketing, setMarketing] = useState(t?.marketing ?? true);
  const [leadId, setLeadId] = useState("");
  const [preview, setPreview] = useState<any>(null);
  const [err, setErr] = useState("");
  const dirty = !t || name !== t.name || channel !== t.channel || (subject || null) !== (t.subject || null) || body !== t.body || marketing !== t.marketing;
  async function save(): Promise<Template | null> {
    setErr("");
    const b = { name, channel, subject: channel === "email" ? subject : null, body, marketing };
    try {
      const r = t ? await api<Template>(`/v1/templates/${t.id}`, { method: "PATCH", body: b, headers: { "If-Match": `"v${t.version}"` } }) : await api<Template>(`/v1/templates`, { method: "POST", body: b });
      return r;
    } catch (e) {
      setErr(errorText(e));
      return null;
    }
  }
  async function doPreview() {
    setErr("");
    if (!t) return setErr("Save the template first: the server renders saved templates.");
    try {
      setPreview(await api(`/v1/templates/${t.id}/preview`, { method: "POST", body: leadId ? { lead_id: Number(leadId) } : {} }));
    } catch (e) {
      setErr(errorText(e));
    }
  }
  return (
    <Modal title={t ? (p.canWrite ? "Edit template" : "Template") : "New template"} onClose={() => p.onClose(false)}>
      <form class="form" onSubmit={async (e) => { e.preventDefault(); if (await save()) { toast("Template saved", "good"); p.onClose(true); } }}>
        <div class="row-fields">
          <label class="field field-grow"><span>Name</span><input required disabled={!p.canWrite} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
          <label class="field"><span>Channel</span>
            <select disabled={!p.canWrite} value={channel} onChange={(e) => setChannel((e.target as HTMLSelectElement).value as any)}><option value="sms">SMS</option><option value="email">E-mail</option></select>
          </label>
        </div>
        {channel === "email" && <label class="field"><span>Subject</span><input disabled={!p.canWrite} value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} /></label>}
        <label class="field"><span>Body</span><textarea rows={5} disabled={!p.canWrite} value={body} onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)} /></label>
        <p class="muted small">Variables: {"{{first_name}}, {{last_name}}, {{agent.name}}, {{agent.phone}}, {{listing.address}}, {{tenant.name}}"}; a default after a bar: {"{{first_name|there}}"}. Marketing SMS must say STOP.</p>
        <label class="check"><input type="checkbox" disabled={!p.canWrite} checked={marketing} onChange={(e) => setMarketing((e.target as HTMLInputElement).checked)} /> Marketing message</label>
        <div class="preview-bar">
          <label class="field"><span>Preview for lead #</span><input inputMode="numeric" placeholder="sample values" value={leadId} onInput={(e) => setLeadId((e.target as HTMLInputElement).value.replace(/\D/g, ""))} /></label>
          <button type="button" class="btn btn-small" onClick={doPreview} disabled={!t || dirty}>Preview</button>
        </div>
        {preview && (
          <div class="preview" data-testid="template-preview">
            {preview.subject && <p><b>{preview.subject}</b></p>}
            <p class="preview-body">{preview.body}</p>
            {preview.sms && <p class="muted small">{preview.sms.encoding} · {preview.sms.units} units · {preview.sms.segments} segment{preview.sms.segments === 1 ? "" : "s"}</p>}
          </div>
        )}
        {err && <p class="error-note" role="alert">{err}</p>}
        {p.canWrite && (
          <div class="btn-row end">
            <button type="button" class="btn" onClick={() => p.onClose(false)}>Cancel</button>
            <button type="submit" class="btn btn-primary" disabled={!dirty}>Save</button>
          </div>
        )}
      </form>
    </Modal>
  );
}
