// Password reset: ask for a link, or (with #token=… from the emailed link) set a password.
// The token travels in the fragment, so it never reaches server logs or a Referer header.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");

async function post(path, body) {
  const response = await fetch(`/api/v1/auth/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.errors?.[0]?.message || answer.message || `HTTP ${response.status}`);
  return answer;
}

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const answer = await post("reset-request", { email: $("ask-email").value.trim() });
    $("ask-status").textContent = answer.status;
  } catch (error) {
    $("ask-status").textContent = error.message;
  }
});

$("choose-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await post("reset", { token, password: $("new-password").value });
    history.replaceState(null, "", location.pathname);
    $("choose-status").replaceChildren("Password set. ", Object.assign(
      document.createElement("a"), { href: "./", textContent: "Sign in" }));
  } catch (error) {
    $("choose-status").textContent = error.message;
  }
});

$(token ? "choose" : "ask").hidden = false;
window.addEventListener("hashchange", () => location.reload()); // a link opened over this page
