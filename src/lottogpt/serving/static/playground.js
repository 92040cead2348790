// The playground: send the fields as typed to POST /v1/console, show the answer or the server's [ERROR]s.
// Nothing is checked here: every message comes from the server (the kata's own), next to its field.
"use strict";

const FIELDS = ["amount", "tickets", "winning", "bonus"];
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function showMode() {
  const manual = mode() === "manual";
  $("amount-field").hidden = manual;
  $("tickets-field").hidden = !manual;
}

function clearErrors() {
  for (const name of [...FIELDS, "form"]) $(`${name}-error`).textContent = "";
  for (const name of FIELDS) $(name).removeAttribute("aria-invalid");
}

function showErrors(details) {
  $("answer").hidden = true;  // an answer to other inputs would read as the answer to these
  let first = null;
  for (const detail of details) {
    const field = FIELDS.includes(detail.loc?.[1]) ? detail.loc[1] : "form";
    const target = $(`${field}-error`);
    target.textContent = target.textContent ? `${target.textContent} ${detail.msg}` : detail.msg;
    if (field !== "form") {
      $(field).setAttribute("aria-invalid", "true");
      first = first || $(field);
    }
  }
  if (first) first.focus();
}

// A work line such as "②3+ 5+ 11. 16. 32. 38. =2": numbers flagged + (winning), b (bonus) or . (miss).
const WORK_LINE = /^(\D)((?:\d{1,2}[+b.] ?){6}) =(\d)(b?)(.*)$/u;

function workItem(line) {
  const item = el("li");
  const match = WORK_LINE.exec(line);
  if (!match) {
    item.append(el("span", "plain", line));
    return item;
  }
  const [, marker, numbers, count, bonus, rest] = match;
  item.append(el("span", "marker", marker));
  for (const [, number, flag] of numbers.matchAll(/(\d{1,2})([+b.])/g)) {
    const kind = flag === "+" ? "hit" : flag === "b" ? "bonus" : "miss";
    const chip = el("span", `n ${kind}`, number);
    chip.title = { hit: "당첨 번호", bonus: "보너스 번호", miss: "불일치" }[kind];
    item.append(chip);
  }
  item.append(el("span", "count", `= ${count}개${bonus ? " + 보너스" : ""}`));
  if (rest.trim()) item.append(el("span", "extra", rest.trim()));
  return item;
}

function render(answer, elapsedMs) {
  const summary = $("summary");
  summary.replaceChildren();
  const verdict = answer.agrees ? "기준 프로그램과 일치 ✓" : "기준 프로그램과 다름 ✗";
  summary.append(el("span", `verdict ${answer.agrees ? "ok" : "bad"}`, verdict),
    el("span", "", `엔진 ${answer.engine} · 모델 버전 ${answer.model_version}`),
    el("span", "", `응답 ${Math.round(elapsedMs)} ms`),
    el("span", "", `${answer.n_tickets}장 · ${answer.amount.toLocaleString("ko-KR")}원`));
  $("transcript").textContent = answer.transcript;
  const expected = answer.reference.output.split("\n");
  const lines = $("lines");
  lines.replaceChildren();
  answer.output.split("\n").forEach((line, i) => {
    const ok = Boolean(answer.lines_agree[i]);
    const item = el("li");
    const mark = el("span", `mark ${ok ? "ok" : "bad"}`, ok ? "✓" : "✗");
    mark.setAttribute("aria-label", ok ? "기준과 일치" : "기준과 다름");
    const text = el("span", "", line);
    if (!ok && expected[i] !== undefined) text.append(el("span", "expected", `기준: ${expected[i]}`));
    item.append(mark, text);
    lines.append(item);
  });
  $("work").replaceChildren(...(answer.work || []).map(workItem));
  $("answer").hidden = false;
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const body = { winning: $("winning").value, bonus: $("bonus").value };
  if (mode() === "manual") body.tickets = $("tickets").value;
  else body.amount = $("amount").value;
  const button = $("submit");
  button.disabled = true;
  const started = performance.now();
  try {
    const response = await fetch("/v1/console", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json();
    if (response.ok) render(data, performance.now() - started);
    else if (Array.isArray(data.detail)) showErrors(data.detail);
    else showErrors([{ loc: ["body"], msg: `[ERROR] ${data.detail} (HTTP ${response.status})` }]);
  } catch (error) {
    showErrors([{ loc: ["body"], msg: `[ERROR] 서버에 연결할 수 없습니다 (${error})` }]);
  } finally {
    button.disabled = false;
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/info");
    const info = await response.json();
    if (!response.ok) throw new Error(info.detail);
    const most = Math.min(info.max_tickets ?? Infinity, info.limits.max_tickets);
    $("amount-hint").textContent = `1,000원에 한 장, ${(info.min_tickets ?? 1)}~${most}장`;
    $("model-info").textContent = `엔진 ${info.engine} · 모델 ${info.model_version}`
      + (info.answer_format ? ` · 풀이 형식 ${info.answer_format}` : "");
  } catch (error) {
    $("model-info").textContent = `모델 정보를 가져오지 못했습니다: ${error.message}`;
    setTimeout(loadInfo, 1000);  // /info is 503 until the model is loaded
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", showMode);
  $("play").addEventListener("submit", submit);
  showMode();
  loadInfo();
});
