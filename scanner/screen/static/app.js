// Officer screen: follows /events, draws the verdict, plays a sound per colour. No build step.
"use strict";

// Colour names are the system's (protocol/words.py, served as /static/words.js): the dashboard's too.
const COLOUR = (window.CHOT_WORDS || {}).colours || {};
const colourName = (result, lang) => ((COLOUR[result] || {})[lang] || result).toLocaleUpperCase(lang);
const colourCount = (c, lang) => ["green", "yellow", "red"]
  .map((r) => `${(COLOUR[r] || {})[lang] || r} ${c[r]}`).join(" · ");

const TEXT = {
  vi: {
    idle: "Đưa mã QR vào camera", green: colourName("green", "vi"), yellow: colourName("yellow", "vi"),
    red: colourName("red", "vi"),
    dob: "Ngày sinh", trust: "Danh sách tin cậy", noTrust: "Chưa có danh sách tin cậy", version: "bản ",
    online: "Đã kết nối", offline: "Mất kết nối", standalone: "Không báo cáo", backlog: "chờ gửi",
    staleTrust: "Danh sách tin cậy đã cũ: cập nhật sớm", clock: "Đồng hồ thiết bị sai: kết quả cần kiểm tra bằng mắt",
    camera: "Camera", fps: "khung/giây", noCamera: "Lỗi camera", outbox: "Không lưu được kết quả",
    counts: (c) => colourCount(c, "vi") + (c.decision || c.manual ? ` · Quyết định ${c.decision || 0} · Thủ công ${c.manual || 0}` : ""),
    other: "EN",
    signIn: "Cán bộ đăng nhập", signOut: "Đăng xuất", manual: "Kiểm tra thủ công (không có mã QR)",
    officer: "Cán bộ", noOfficer: "Chưa có cán bộ đăng nhập: không ghi được quyết định",
    pinFor: (name) => `Nhập mã PIN của ${name}, rồi bấm OK`, ok: "OK", cancel: "Hủy",
    decideOn: "Quyết định cho kết quả này:", manualTitle: "Người không có mã QR: ghi kết quả kiểm tra giấy tờ",
    locked: (s) => `Sai mã PIN nhiều lần: thử lại sau ${s} giây`, failed: "Không gửi được: thử lại",
    portal: "Cổng thông tin", hotline: "Đường dây nóng",
    ago: (s) => s < 3600 ? `${Math.round(s / 60)} phút trước` : `${Math.round(s / 3600)} giờ trước`,
  },
  en: {
    idle: "Hold the QR code to the camera", green: colourName("green", "en"), yellow: colourName("yellow", "en"),
    red: colourName("red", "en"),
    dob: "Born", trust: "Trust list", noTrust: "No trust list yet", version: "v",
    online: "Online", offline: "Offline", standalone: "Not reporting", backlog: "waiting",
    staleTrust: "Trust list out of date: update soon", clock: "Unit clock is wrong: check results by hand",
    camera: "Camera", fps: "fps", noCamera: "Camera problem", outbox: "Results are not being saved",
    counts: (c) => colourCount(c, "en") + (c.decision || c.manual ? ` · Decisions ${c.decision || 0} · Manual ${c.manual || 0}` : ""),
    other: "VI",
    signIn: "Officer sign-in", signOut: "Sign out", manual: "Manual check (no QR code)",
    officer: "Officer", noOfficer: "No officer signed in: decisions cannot be recorded",
    pinFor: (name) => `Enter the PIN of ${name}, then OK`, ok: "OK", cancel: "Cancel",
    decideOn: "Decision on this result:", manualTitle: "Person without a QR code: record the paper check",
    locked: (s) => `Too many wrong PINs: try again in ${s} s`, failed: "Not sent: try again",
    portal: "Portal", hotline: "Hotline",
    ago: (s) => s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`,
  },
};

let lang = localStorage.getItem("chot.lang");
let last = null;
let lastSoundId = 0;
let lastVerdictKey = null;  // what the verdict lines and next step were last drawn from
let audio = null;

const $ = (id) => document.querySelector(`[data-test-id="${id}"]`);

function tone(ctx, freq, start, length, type) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = type;
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0.0001, ctx.currentTime + start);
  gain.gain.exponentialRampToValueAtTime(0.4, ctx.currentTime + start + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + start + length);
  osc.connect(gain).connect(ctx.destination);
  osc.start(ctx.currentTime + start);
  osc.stop(ctx.currentTime + start + length + 0.02);
}

// green: two rising notes; yellow: two equal beeps; red: one long low buzz.
function playSound(result) {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
    if (result === "green") { tone(audio, 880, 0, 0.12, "sine"); tone(audio, 1320, 0.14, 0.18, "sine"); }
    else if (result === "yellow") { tone(audio, 660, 0, 0.15, "triangle"); tone(audio, 660, 0.25, 0.15, "triangle"); }
    else if (result === "red") { tone(audio, 180, 0, 0.7, "square"); }
    document.body.dataset.sound = result;
  } catch (e) { /* no audio device: the colour still shows */ }
}

function setText(id, text) { $(id).textContent = text || ""; }

// Dates as on a citizen ID card: dd/mm/yyyy (the JSON keeps ISO 8601). A DCC date of birth may be
// only a year or a year and month; a test's sampling time is shown in the unit's local time.
function dayMonthYear(iso, withTime) {
  const text = String(iso || "");
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(text);
  if (!m) return text;
  if (withTime && text.length > 10) {
    const when = new Date(text);
    if (!isNaN(when)) {
      const two = (n) => String(n).padStart(2, "0");
      return `${two(when.getDate())}/${two(when.getMonth() + 1)}/${when.getFullYear()} ` +
        `${two(when.getHours())}:${two(when.getMinutes())}`;
    }
  }
  return [m[3], m[2], m[1]].filter(Boolean).join("/");
}

function render(state) {
  last = state;
  const t = TEXT[lang || state.language] || TEXT.vi;
  document.documentElement.lang = lang || state.language;
  $("lang").textContent = t.other;
  const v = state.verdict;
  const current = lang || state.language;
  document.body.dataset.verdict = v ? v.result : "idle";
  setText("headline", v ? t[v.result] : t.idle);
  setText("message", v ? (current === "en" ? v.message_en : v.message_vi) : "");
  setText("name", v && v.name);
  setText("name-t", v && v.name_t && v.name_t !== v.name ? v.name_t : "");
  setText("dob", v && v.dob ? `${t.dob}: ${dayMonthYear(v.dob, false)}` : "");
  // The status lines change every second; the verdict's nodes are rebuilt only when it changes,
  // so what the officer reads (or a click lands on) is not replaced under them.
  const verdictKey = JSON.stringify([v && v.lines, v && v.next_step, current]);
  if (verdictKey !== lastVerdictKey) {
    lastVerdictKey = verdictKey;
    renderLines(v, current);
    renderNextStep(v && v.next_step, t, current);
  }
  if (v && v.id !== lastSoundId) { lastSoundId = v.id; playSound(v.result); }
  renderStatus(state.status || {}, t);
  renderDesk(state, t, current);
}

function renderLines(v, current) {
  const lines = $("lines");
  lines.replaceChildren();
  for (const line of (v && v.lines) || []) {
    const dt = document.createElement("dt");
    dt.textContent = line[current] || line.en;
    const dd = document.createElement("dd");
    const value = line["value_" + current] || line.value;
    dd.textContent = line.kind ? dayMonthYear(value, line.kind === "datetime") : value;
    lines.append(dt, dd);
  }
}

// What the person can do next, and the ministry's correction channel (from the signed policy).
function renderNextStep(step, t, current) {
  const box = $("next-step");
  box.replaceChildren();
  if (!step) return;
  box.append(document.createTextNode(step[current] || step.en));
  const c = step.correction;
  if (c) {
    const line = document.createElement("span");
    line.className = "correction";
    line.dataset.testId = "correction";
    const parts = [c[current] || c.en];
    if (c.portal) parts.push(`${t.portal}: ${c.portal}`);
    if (c.hotline) parts.push(`${t.hotline}: ${c.hotline}`);
    line.textContent = parts.join(" · ");
    box.append(line);
  }
}

// -- officer desk: sign-in with a PIN, one tap per decision ---------------------------------
let deskMode = null;        // null | "signin" | "pin" | "manual"
let pinOfficer = null;
let busy = false;
let choicesKey = "";
let localMessage = null;    // {text, error} shown until the next server message
let lastServerMessage = null;
let doneSeq = null;         // the verdict just decided: its buttons do not come back

function button(label, cls, onClick, testId) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (cls) b.className = cls;
  if (testId) b.dataset.testId = testId;
  b.addEventListener("click", onClick);
  return b;
}

async function post(path, body) {
  try {
    const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify(body || {})});
    return await r.json();
  } catch (e) {
    return {ok: false, error: null};
  }
}

function say(text, error) {
  localMessage = {text, error};
  const box = $("desk-message");
  box.textContent = text || "";
  box.classList.toggle("error", !!error);
}

function errorText(answer, t, current) {
  return answer.error ? (answer.error[current] || answer.error.en) : t.failed;
}

async function act(path, body, after) {
  if (busy) return;              // a double tap sends one request
  busy = true;
  document.querySelectorAll(".desk .choices button").forEach((b) => { b.disabled = true; });
  const t = TEXT[lang || (last && last.language)] || TEXT.vi;
  const current = lang || (last && last.language) || "vi";
  const answer = await post(path, body);
  busy = false;
  if (answer.ok) { localMessage = null; if (after) after(answer); }
  else say(errorText(answer, t, current), true);
  // The same choices stay (enabled again); they are rebuilt only if what is asked changed.
  document.querySelectorAll(".desk .choices button").forEach((b) => { b.disabled = false; });
  if (last) render(last);
}

function renderDesk(state, t, current) {
  const d = state.desk;
  const box = $("desk");
  if (!d || !d.allowed) { box.hidden = true; document.body.dataset.officer = "off"; return; }
  box.hidden = false;
  const officer = d.officer;
  document.body.dataset.officer = officer ? "on" : "off";
  if (officer && (deskMode === "signin" || deskMode === "pin")) deskMode = null;
  if (!officer && deskMode === "manual") deskMode = null;
  setText("desk-officer", officer ? `${t.officer}: ${officer.name} (${officer.id})`
    : (d.problem ? (d.problem[current] || d.problem.en) : t.noOfficer));
  const open = $("signin-open"), out = $("signout"), manual = $("manual-open");
  open.textContent = deskMode ? t.cancel : t.signIn;
  open.hidden = !!officer || !!d.problem;
  out.textContent = t.signOut;
  out.hidden = !officer;
  manual.textContent = deskMode === "manual" ? t.cancel : t.manual;
  manual.hidden = !officer || !d.manual_choices.length;
  // Messages: the server's (recorded...) unless a newer local one (an error) is showing.
  const server = d.message ? JSON.stringify(d.message) : null;
  if (server !== lastServerMessage) { lastServerMessage = server; if (d.message) localMessage = null; }
  const msgBox = $("desk-message");
  if (localMessage) { msgBox.textContent = localMessage.text; msgBox.classList.toggle("error", !!localMessage.error); }
  else if (d.locked_s) { msgBox.textContent = t.locked(d.locked_s); msgBox.classList.add("error"); }
  else { msgBox.textContent = d.message ? (d.message[current] || d.message.en) : ""; msgBox.classList.remove("error"); }
  renderSignin(d, t, current, officer);
  renderChoices(state, d, t, current, officer);
}

function renderSignin(d, t, current, officer) {
  const panel = $("signin");
  panel.hidden = !!officer || !(deskMode === "signin" || deskMode === "pin");
  if (panel.hidden) return;
  const list = $("officer-list");
  const key = "o:" + d.officers.map((o) => o.id).join(",") + current;
  if (list.dataset.key !== key) {
    list.dataset.key = key;
    list.replaceChildren(...d.officers.map((o) => button(`${o.name} (${o.id})`, "", () => {
      pinOfficer = o; deskMode = "pin"; say(""); render(last); $("pin").value = ""; $("pin").focus();
    }, `officer-${o.id}`)));
  }
  list.hidden = deskMode === "pin";
  const pad = $("pin-pad");
  pad.hidden = deskMode !== "pin";
  if (deskMode === "pin" && pinOfficer) {
    setText("pin-who", t.pinFor(pinOfficer.name));
    const keys = $("keys");
    if (keys.dataset.lang !== current) {
      keys.dataset.lang = current;
      const digits = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", t.ok];
      keys.replaceChildren(...digits.map((k) => button(k, "", () => pinKey(k, t), `key-${k === t.ok ? "ok" : k}`)));
    }
  }
}

function pinKey(k, t) {
  const input = $("pin");
  if (k === "⌫") input.value = input.value.slice(0, -1);
  else if (k === t.ok) submitPin();
  else if (input.value.length < 8) input.value += k;
}

function submitPin() {
  const input = $("pin");
  const pin = input.value;
  input.value = "";              // the PIN never stays on screen or in memory longer than needed
  if (!pinOfficer) return;
  act("/api/signin", {officer: pinOfficer.id, pin}, () => { deskMode = null; pinOfficer = null; });
}

function renderChoices(state, d, t, current, officer) {
  const box = $("choices");
  let items = [], path = null, extra = {}, title = "";
  if (officer && deskMode === "manual") {
    items = d.manual_choices; path = "/api/manual"; extra = {token: d.manual_token}; title = t.manualTitle;
  } else if (officer && d.pending && state.verdict && d.pending.seq !== doneSeq) {
    items = d.pending.choices; path = "/api/decide"; extra = {follows_seq: d.pending.seq}; title = t.decideOn;
  }
  const key = JSON.stringify([path, extra, items.map((c) => c.code), current]);
  if (key === choicesKey) return;
  choicesKey = key;
  if (!path) { box.replaceChildren(); return; }
  const heading = document.createElement("div");
  heading.className = "choices-title";
  heading.textContent = title;
  box.replaceChildren(heading, ...items.map((c, i) => button(`${i + 1}. ${c[current] || c.en}`, c.outcome,
    () => act(path, {outcome: c.outcome, reason: c.code, ...extra}, () => {
      if (deskMode === "manual") deskMode = null; else doneSeq = extra.follows_seq;
    }),
    `choice-${c.code}`)));
}

$("signin-open").addEventListener("click", () => {
  deskMode = deskMode ? null : "signin"; pinOfficer = null; say(""); if (last) render(last);
});
$("signout").addEventListener("click", () => act("/api/signout", {}, () => { deskMode = null; }));
$("manual-open").addEventListener("click", () => {
  deskMode = deskMode === "manual" ? null : "manual"; say(""); choicesKey = ""; if (last) render(last);
});
$("pin").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); submitPin(); }
  else if (e.key === "Escape") { deskMode = null; if (last) render(last); }
});
// Keyboard: 1-9 pick a decision, as a tap would.
document.addEventListener("keydown", (e) => {
  if (e.target && e.target.tagName === "INPUT") return;
  const n = parseInt(e.key, 10);
  if (n >= 1 && n <= 9) {
    const buttons = document.querySelectorAll(".desk .choices button");
    if (buttons[n - 1] && !buttons[n - 1].disabled) buttons[n - 1].click();
  }
});

function renderStatus(s, t) {
  const trust = s.trust || {};
  setText("trust", trust.version == null ? t.noTrust
    : `${t.trust} ${t.version}${trust.version}` + (trust.age_s == null ? "" : ` · ${t.ago(trust.age_s)}`));
  const net = s.network || {};
  setText("network", net.connected == null ? t.standalone
    : (net.connected ? t.online : t.offline) + (net.backlog ? ` · ${net.backlog} ${t.backlog}` : ""));
  setText("counts", s.counts ? t.counts(s.counts) : "");
  const cam = s.camera || {};
  setText("camera", cam.error ? `${t.noCamera}: ${cam.error}` : (cam.fps == null ? "" : `${t.camera} ${cam.fps} ${t.fps}`));
  const warnings = [];
  if (trust.version == null) warnings.push(t.noTrust);
  else if (trust.stale) warnings.push(t.staleTrust);
  if (s.clock && !s.clock.ok) warnings.push(t.clock);
  if (cam.error) warnings.push(t.noCamera);
  if (s.outbox_error) warnings.push(t.outbox);
  const box = $("warnings");
  box.textContent = warnings.join(" · ");
  box.classList.toggle("on", warnings.length > 0);
}

$("lang").addEventListener("click", () => {
  const current = lang || (last && last.language) || "vi";
  lang = current === "vi" ? "en" : "vi";
  localStorage.setItem("chot.lang", lang);
  if (last) render(last);
});
document.addEventListener("click", () => { if (audio && audio.state === "suspended") audio.resume(); });

// The preview only streams while the page is visible: a hidden kiosk tab costs no JPEG encoding.
function updatePreview() {
  const img = $("preview");
  if (document.hidden) img.removeAttribute("src");
  else if (!img.getAttribute("src")) img.src = "/preview.mjpg";
}
document.addEventListener("visibilitychange", updatePreview);
updatePreview();

const events = new EventSource("/events");
events.onmessage = (e) => render(JSON.parse(e.data));
