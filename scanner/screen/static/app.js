// Officer screen: follows /events, draws the verdict, plays a sound per colour. No build step.
"use strict";

const TEXT = {
  vi: {
    idle: "Đưa mã QR vào camera", green: "HỢP LỆ", yellow: "CẦN KIỂM TRA", red: "KHÔNG HỢP LỆ",
    dob: "Ngày sinh", trust: "Danh sách tin cậy", noTrust: "Chưa có danh sách tin cậy", version: "bản",
    online: "Đã kết nối", offline: "Mất kết nối", standalone: "Không báo cáo", backlog: "chờ gửi",
    staleTrust: "Danh sách tin cậy đã cũ: cập nhật sớm", clock: "Đồng hồ thiết bị sai: kết quả cần kiểm tra bằng mắt",
    camera: "Camera", fps: "khung/giây", noCamera: "Lỗi camera", outbox: "Không lưu được kết quả",
    counts: (c) => `Xanh ${c.green} · Vàng ${c.yellow} · Đỏ ${c.red}`, other: "EN",
    ago: (s) => s < 3600 ? `${Math.round(s / 60)} phút trước` : `${Math.round(s / 3600)} giờ trước`,
  },
  en: {
    idle: "Hold the QR code to the camera", green: "VALID", yellow: "CHECK", red: "NOT VALID",
    dob: "Born", trust: "Trust list", noTrust: "No trust list yet", version: "v",
    online: "Online", offline: "Offline", standalone: "Not reporting", backlog: "waiting",
    staleTrust: "Trust list out of date: update soon", clock: "Unit clock is wrong: check results by hand",
    camera: "Camera", fps: "fps", noCamera: "Camera problem", outbox: "Results are not being saved",
    counts: (c) => `Green ${c.green} · Yellow ${c.yellow} · Red ${c.red}`, other: "VI",
    ago: (s) => s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`,
  },
};

let lang = localStorage.getItem("chot.lang");
let last = null;
let lastSoundId = 0;
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
  setText("dob", v && v.dob ? `${t.dob}: ${v.dob}` : "");
  const lines = $("lines");
  lines.replaceChildren();
  for (const line of (v && v.lines) || []) {
    const dt = document.createElement("dt");
    dt.textContent = line[current] || line.en;
    const dd = document.createElement("dd");
    dd.textContent = line["value_" + current] || line.value;
    lines.append(dt, dd);
  }
  if (v && v.id !== lastSoundId) { lastSoundId = v.id; playSound(v.result); }
  renderStatus(state.status || {}, t);
}

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
