// tokenbus chat page: plain browser JavaScript, no build step, no dependencies.
//
// EventSource cannot send an Authorization header, so the typed SSE streams of
// the conversations API are read with fetch() and a small parser. Model output is
// only ever written with textContent: it never becomes markup.
"use strict";

(() => {
  const KEY_STORAGE = "tokenbus.apiKey";
  const MODEL_STORAGE = "tokenbus.model";
  const RETRY_LIMIT = 8;
  const KEY_PROMPT = "Enter your tokenbus API key. It is kept in this browser only.";

  const $ = (id) => document.getElementById(id);
  const els = {
    sidebar: $("sidebar"),
    toggleSidebar: $("toggle-sidebar"),
    model: $("model"),
    openKey: $("open-key"),
    newConversation: $("new-conversation"),
    conversations: $("conversations"),
    conversationsEmpty: $("conversations-empty"),
    heading: $("conversation-title"),
    error: $("error"),
    errorText: $("error-text"),
    dismissError: $("dismiss-error"),
    notice: $("notice"),
    messages: $("messages"),
    emptyState: $("empty-state"),
    composer: $("composer"),
    prompt: $("prompt"),
    send: $("send"),
    stop: $("stop"),
    maxTokens: $("max-tokens"),
    temperature: $("temperature"),
    keyDialog: $("key-dialog"),
    keyForm: $("key-form"),
    keyMessage: $("key-message"),
    keyInput: $("key-input"),
    keyCancel: $("key-cancel"),
  };

  const state = {
    conversations: [], // summaries, newest first
    needsKey: false, // the gateway refused the last request for want of a valid key
    currentId: null, // null: a draft, created on its first message
    current: null, // the open conversation's detail
    models: [],
    live: new Map(), // conversation id -> LiveTurn still running
  };

  // ---------------------------------------------------------------- storage

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      // Private mode without storage: the key lives until the page closes.
    }
    sessionKey = key;
  }

  let sessionKey = storedKey();

  function preferredModel() {
    try {
      return localStorage.getItem(MODEL_STORAGE) || "";
    } catch {
      return "";
    }
  }

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, message, code = null, type = null) {
      super(message);
      this.status = status;
      this.code = code;
      this.type = type;
    }
  }

  async function readError(response) {
    let message = `The gateway answered ${response.status} ${response.statusText}`.trim();
    let code = null;
    let type = null;
    try {
      const body = await response.json();
      if (body && body.error) {
        message = body.error.message || message;
        code = body.error.code ?? null;
        type = body.error.type ?? null;
      }
    } catch {
      // Not JSON (a proxy's page): keep the status line.
    }
    return new ApiError(response.status, message, code, type);
  }

  async function api(method, path, { body, headers = {}, signal } = {}) {
    const sent = { Accept: "application/json", ...headers };
    if (sessionKey) sent.Authorization = `Bearer ${sessionKey}`;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(0, "Cannot reach the gateway. Check the connection.", "network_error");
    }
    if (response.ok) return response;
    const error = await readError(response);
    if (response.status === 401) {
      state.needsKey = true;
      askForKey(
        sessionKey
          ? `The gateway refused the API key: ${error.message}`
          : "This gateway needs an API key.",
        true,
      );
    }
    throw error;
  }

  const getJson = async (path) => (await api("GET", path)).json();
  const conversationPath = (id) => `/v1/conversations/${encodeURIComponent(id)}`;

  // ---------------------------------------------------------------- SSE

  function parseFrame(frame) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue; // comments: keep-alives
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length === 0) return null;
    const text = data.join("\n");
    try {
      return { event, id, data: JSON.parse(text) };
    } catch {
      return { event, id, data: text };
    }
  }

  async function* sseEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) yield event;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- messages

  function formatUsage(usage) {
    if (!usage) return "";
    const approx = usage.estimated ? "≈" : "";
    return `${approx}${usage.input_tokens} in · ${approx}${usage.output_tokens} out tokens`;
  }

  class MessageView {
    constructor(role) {
      this.article = document.createElement("article");
      this.article.className = `message ${role}`;
      this.article.dataset.role = role;
      const who = document.createElement("h3");
      who.className = "visually-hidden";
      who.textContent = { user: "You said", tool: "Tool result" }[role] || "Assistant";
      this.body = document.createElement("div");
      this.body.className = "body";
      this.meta = document.createElement("p");
      this.meta.className = "meta";
      this.statusText = document.createElement("span");
      this.statusText.className = "status";
      this.usageText = document.createElement("span");
      this.usageText.className = "usage";
      this.meta.append(this.statusText, this.usageText);
      this.article.append(who, this.body, this.meta);
    }

    setText(text) {
      this.body.textContent = text;
      for (const call of this.article.querySelectorAll(".tool-call")) call.remove();
    }

    // The page runs no tools itself: it shows what the model asked for, as text.
    addToolCall(call) {
      const shown = document.createElement("pre");
      shown.className = "tool-call";
      let args = call.arguments;
      try {
        args = JSON.stringify(JSON.parse(call.arguments), null, 2);
      } catch {
        // arguments the model wrote are shown as written
      }
      shown.textContent = `Calls ${call.name} (${call.id})\n${args}`;
      this.article.insertBefore(shown, this.meta);
    }

    setToolResult(callId, content) {
      this.body.textContent = content;
      this.statusText.textContent = `Result of ${callId}`;
    }

    append(text) {
      const follow = nearBottom();
      this.body.append(document.createTextNode(text));
      if (follow) scrollToBottom();
    }

    setStatus(status, label = "") {
      this.article.dataset.status = status;
      this.article.setAttribute("aria-busy", status === "streaming" ? "true" : "false");
      this.statusText.textContent = label;
    }

    setUsage(usage) {
      this.usageText.textContent = formatUsage(usage);
    }

    finish(reason) {
      this.article.dataset.finishReason = reason;
      if (reason === "cancelled") this.setStatus("cancelled", "Stopped (cancelled)");
      else if (reason === "length") this.setStatus("complete", "Cut at the token limit");
      else if (reason === "content_filter") this.setStatus("complete", "Stopped by the content filter");
      else if (reason === "tool_calls") this.setStatus("complete", "Waiting for tool results");
      else this.setStatus("complete", "");
    }

    fail(message, code) {
      this.setStatus("failed", "");
      const error = document.createElement("p");
      error.className = "message-error";
      error.setAttribute("role", "alert");
      error.textContent = code ? `Error (${code}): ${message}` : `Error: ${message}`;
      this.article.insertBefore(error, this.meta);
    }
  }

  function storedMessageView(message) {
    const view = new MessageView(message.role);
    view.setText(message.content);
    if (message.role === "tool") view.setToolResult(message.tool_call_id, message.content);
    for (const call of message.tool_calls || []) {
      view.addToolCall({ id: call.id, name: call.function.name, arguments: call.function.arguments });
    }
    if (message.role === "assistant") {
      if (message.status === "cancelled") view.finish("cancelled");
      else if (message.status === "failed") {
        view.fail("The answer failed.", message.error_code);
      } else view.setStatus(message.status || "complete", "");
      view.setUsage(message.usage);
    }
    return view;
  }

  function nearBottom() {
    const m = els.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom() {
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function showMessage(view) {
    els.emptyState.hidden = true;
    els.messages.append(view.article);
    scrollToBottom();
  }

  // ---------------------------------------------------------------- banners

  function showError(err) {
    if (err && err.name === "AbortError") return;
    const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
    const code = err && err.code ? ` (${err.code})` : "";
    els.errorText.textContent = `${message}${code}`;
    els.error.hidden = false;
  }

  function clearError() {
    els.error.hidden = true;
    els.errorText.textContent = "";
  }

  function showNotice(text) {
    els.notice.textContent = text;
    els.notice.hidden = !text;
  }

  // ---------------------------------------------------------------- key dialog

  function askForKey(message, isError = false) {
    els.keyMessage.textContent = message || KEY_PROMPT;
    els.keyMessage.classList.toggle("error-text", isError);
    els.keyInput.value = "";
    if (!els.keyDialog.open) els.keyDialog.showModal();
    els.keyInput.focus();
  }

  function saveKey(event) {
    event.preventDefault();
    storeKey(els.keyInput.value.trim());
    state.needsKey = false;
    els.keyDialog.close();
    clearError();
    loadEverything();
  }

  function keyDialogClosed() {
    if (state.needsKey) {
      showError(new ApiError(401, 'No valid API key: use "API key" at the top to enter one.'));
    }
  }

  // ---------------------------------------------------------------- models

  async function loadModels() {
    const body = await getJson("/v1/models");
    state.models = body.data.map((m) => m.id);
    renderModels();
  }

  function renderModels() {
    const chosen = state.current ? state.current.model : preferredModel();
    const names = [...state.models];
    if (chosen && state.current && !names.includes(chosen)) names.push(chosen);
    els.model.replaceChildren(
      ...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        return option;
      }),
    );
    if (names.includes(chosen)) els.model.value = chosen;
    // A conversation keeps the model it was created with.
    els.model.disabled = Boolean(state.current);
    els.model.title = state.current ? "This conversation keeps the model it started with." : "";
  }

  // ---------------------------------------------------------------- conversations

  async function loadConversations() {
    const body = await getJson("/v1/conversations");
    state.conversations = body.data;
    renderConversationList();
  }

  function titleOf(summary) {
    return (summary && summary.title) || "New conversation";
  }

  function renderConversationList() {
    els.conversations.replaceChildren(
      ...state.conversations.map((summary) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "conversation-item";
        button.dataset.id = summary.id;
        button.textContent = titleOf(summary);
        if (summary.id === state.currentId) button.setAttribute("aria-current", "page");
        if (state.live.has(summary.id)) button.classList.add("live");
        button.addEventListener("click", () => {
          closeSidebarOnPhone();
          if (summary.id !== state.currentId) openConversation(summary.id).catch(showError);
        });
        item.append(button);
        return item;
      }),
    );
    els.conversationsEmpty.hidden = state.conversations.length > 0;
  }

  function renderHeading() {
    const title = state.current ? titleOf(state.current) : "New conversation";
    els.heading.textContent = title;
    document.title = `${title} · tokenbus chat`;
  }

  function applyTitle(conversationId, title) {
    if (!title) return;
    const summary = state.conversations.find((c) => c.id === conversationId);
    if (summary) summary.title = title;
    if (state.current && state.current.id === conversationId) state.current.title = title;
    renderConversationList();
    renderHeading();
  }

  function setHash(id) {
    const target = id ? `#${id}` : "";
    if (location.hash !== target) {
      history.replaceState(null, "", `${location.pathname}${location.search}${target}`);
    }
  }

  function startDraft() {
    state.currentId = null;
    state.current = null;
    setHash(null);
    clearError();
    showNotice("");
    els.messages.replaceChildren(els.emptyState);
    els.emptyState.hidden = false;
    renderHeading();
    renderModels();
    renderConversationList();
    refreshBusy();
    els.prompt.focus();
  }

  async function openConversation(id) {
    state.currentId = id;
    setHash(id);
    clearError();
    showNotice("");
    renderConversationList();
    let detail;
    try {
      detail = await getJson(conversationPath(id));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        if (state.currentId === id) startDraft();
        showError(err);
        return;
      }
      throw err;
    }
    if (state.currentId !== id) return; // another conversation was picked meanwhile
    state.current = detail;
    const live = state.live.get(id);
    const running = live ? live.turnId : detail.active_turn_id;
    const views = detail.messages
      .filter((m) => m.role !== "system")
      // The running turn's answer is drawn live, not from the store.
      .filter((m) => !(running && m.role === "assistant" && m.turn_id === running))
      .map(storedMessageView);
    els.messages.replaceChildren(els.emptyState, ...views.map((v) => v.article));
    els.emptyState.hidden = views.length > 0;
    renderHeading();
    renderModels();
    if (live) showMessage(live.view);
    else if (detail.active_turn_id) reattach(id, detail.active_turn_id);
    refreshBusy();
    scrollToBottom();
  }

  // ---------------------------------------------------------------- turns

  class LiveTurn {
    constructor(conversationId, view) {
      this.conversationId = conversationId;
      this.view = view;
      this.turnId = null;
      this.lastEventId = null;
      this.ended = false;
      this.controller = new AbortController();
    }
  }

  function refreshBusy() {
    const live = state.live.get(state.currentId);
    els.stop.hidden = !live;
    els.stop.disabled = Boolean(live && live.stopping);
    els.send.disabled = Boolean(live);
    els.composer.setAttribute("aria-busy", live ? "true" : "false");
  }

  function handleEvent(turn, event) {
    const { view } = turn;
    switch (event.event) {
      case "turn":
        turn.turnId = event.data.turn_id;
        break;
      case "delta":
        view.append(event.data.text);
        break;
      case "tool_call":
        view.addToolCall(event.data);
        break;
      case "usage":
        view.setUsage(event.data);
        break;
      case "done":
        view.finish(event.data.finish_reason);
        endTurn(turn);
        break;
      case "error":
        view.fail(event.data.message, event.data.code);
        endTurn(turn);
        break;
      case "reset":
        // The generator serving the turn died and another restarted it.
        view.setText("");
        break;
      case "title":
        applyTitle(event.data.conversation_id || turn.conversationId, event.data.title);
        break;
      default:
        break; // events of later API versions
    }
    if (event.id) turn.lastEventId = event.id;
  }

  function endTurn(turn) {
    turn.ended = true;
    if (state.live.get(turn.conversationId) === turn) state.live.delete(turn.conversationId);
    if (state.currentId === turn.conversationId) showNotice("");
    renderConversationList();
    refreshBusy();
    const summary = state.conversations.find((c) => c.id === turn.conversationId);
    if (summary && !summary.title) {
      // The title normally comes on this stream; look again in case it took another path.
      for (const delay of [3000, 10000]) {
        setTimeout(() => refreshTitles(turn.conversationId), delay);
      }
    }
  }

  async function refreshTitles(conversationId) {
    const summary = state.conversations.find((c) => c.id === conversationId);
    if (!summary || summary.title) return;
    try {
      const body = await getJson("/v1/conversations");
      for (const fresh of body.data) {
        const known = state.conversations.find((c) => c.id === fresh.id);
        if (fresh.title && known && !known.title) applyTitle(fresh.id, fresh.title);
      }
    } catch {
      // A later look will do.
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function streamRequest(turn) {
    const headers = { Accept: "text/event-stream" };
    if (turn.lastEventId) headers["Last-Event-ID"] = turn.lastEventId;
    return () =>
      api("GET", `${conversationPath(turn.conversationId)}/stream`, {
        headers,
        signal: turn.controller.signal,
      });
  }

  // Reads a turn to its end, reconnecting with Last-Event-ID when the connection drops.
  // Returns the ApiError when the very first request was refused (no turn started).
  async function follow(turn, firstRequest) {
    state.live.set(turn.conversationId, turn);
    renderConversationList();
    refreshBusy();
    let request = firstRequest;
    let failures = 0;
    let refused = null;
    for (;;) {
      let response = null;
      try {
        response = await request();
      } catch (err) {
        if (turn.controller.signal.aborted) break;
        const retryable = err instanceof ApiError && (err.status === 0 || err.status >= 500);
        if (turn.turnId === null || !retryable) {
          // Never attached: nothing to resume. Or the gateway says no for good.
          if (turn.turnId === null) refused = err;
          else turn.view.fail(err.message, err.code);
          break;
        }
      }
      if (response) {
        if (!turn.lastEventId) turn.view.setText(""); // a replay from the turn's start
        try {
          for await (const event of sseEvents(response)) {
            if (event.event === "turn" && turn.turnId && event.data.turn_id !== turn.turnId) {
              throw new Error("The conversation moved on to another turn.");
            }
            handleEvent(turn, event);
            failures = 0;
          }
        } catch (err) {
          if (turn.controller.signal.aborted) break;
          if (!(err instanceof TypeError) && !(err instanceof DOMException)) {
            turn.view.fail(err.message, null);
            break;
          }
        }
      }
      if (turn.ended || turn.controller.signal.aborted) break;
      if (turn.turnId === null) {
        refused = new ApiError(0, "The gateway closed the stream before the turn started.");
        break;
      }
      failures += 1;
      if (failures > RETRY_LIMIT) {
        turn.view.fail("Lost the connection to the gateway. Reload the page to try again.",
          "connection_lost");
        break;
      }
      if (state.currentId === turn.conversationId) showNotice("Connection lost, reconnecting…");
      await sleep(Math.min(250 * 2 ** (failures - 1), 4000));
      request = streamRequest(turn);
    }
    if (!turn.ended) {
      // Whatever stopped us, this page no longer follows the turn.
      if (state.live.get(turn.conversationId) === turn) state.live.delete(turn.conversationId);
      if (!refused && turn.view.article.dataset.status === "streaming") {
        turn.view.setStatus("failed", "Interrupted");
      }
      renderConversationList();
      refreshBusy();
    }
    if (state.currentId === turn.conversationId) showNotice("");
    return refused;
  }

  function reattach(conversationId, turnId) {
    const view = new MessageView("assistant");
    view.setStatus("streaming", "");
    view.article.dataset.resumed = "true";
    showMessage(view);
    const turn = new LiveTurn(conversationId, view);
    turn.turnId = turnId;
    showNotice("Reconnected to the answer in progress.");
    follow(turn, streamRequest(turn)).then((refused) => {
      if (refused) showError(refused);
    });
  }

  function messageOptions() {
    const body = {};
    const maxTokens = Number.parseInt(els.maxTokens.value, 10);
    if (Number.isFinite(maxTokens) && maxTokens > 0) body.max_tokens = maxTokens;
    const temperature = Number.parseFloat(els.temperature.value);
    if (Number.isFinite(temperature)) body.temperature = temperature;
    return body;
  }

  async function ensureConversation() {
    if (state.currentId) return state.currentId;
    const model = els.model.value || undefined;
    const created = await (await api("POST", "/v1/conversations", { body: { model } })).json();
    state.currentId = created.id;
    state.current = created;
    state.conversations.unshift(created);
    setHash(created.id);
    renderConversationList();
    renderHeading();
    renderModels();
    return created.id;
  }

  async function send() {
    const content = els.prompt.value;
    if (!content.trim() || state.live.has(state.currentId)) return;
    clearError();
    els.send.disabled = true;
    let conversationId;
    try {
      conversationId = await ensureConversation();
    } catch (err) {
      showError(err);
      refreshBusy();
      return;
    }
    els.prompt.value = "";
    const question = new MessageView("user");
    question.setText(content);
    showMessage(question);
    const view = new MessageView("assistant");
    view.setStatus("streaming", "");
    showMessage(view);
    const turn = new LiveTurn(conversationId, view);
    const body = { content, ...messageOptions() };
    const refused = await follow(turn, () =>
      api("POST", `${conversationPath(conversationId)}/messages`, {
        body,
        headers: { Accept: "text/event-stream" },
        signal: turn.controller.signal,
      }),
    );
    if (refused) {
      // Nothing was kept on the gateway: take the message back so it can be sent again.
      question.article.remove();
      view.article.remove();
      if (!els.prompt.value) els.prompt.value = content;
      if (refused.status !== 401) showError(refused);
    }
  }

  async function stop() {
    const turn = state.live.get(state.currentId);
    if (!turn || turn.stopping) return;
    turn.stopping = true;
    turn.view.setStatus("streaming", "Stopping…");
    refreshBusy();
    try {
      await api("POST", `${conversationPath(turn.conversationId)}/cancel`);
    } catch (err) {
      // 409: the turn ended on its own meanwhile; its last events are on the way.
      if (!(err instanceof ApiError && err.code === "no_turn_in_progress")) {
        turn.stopping = false;
        turn.view.setStatus("streaming", "");
        refreshBusy();
        showError(err);
      }
    }
  }

  // ---------------------------------------------------------------- start

  async function loadEverything() {
    try {
      await Promise.all([loadModels(), loadConversations()]);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showError(err);
      return;
    }
    const wanted = location.hash.slice(1);
    if (wanted && wanted !== state.currentId) {
      await openConversation(decodeURIComponent(wanted)).catch(showError);
    } else if (!wanted) {
      renderModels();
    }
  }

  function closeSidebarOnPhone() {
    els.sidebar.classList.remove("open");
    els.toggleSidebar.setAttribute("aria-expanded", "false");
  }

  function wire() {
    els.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      send().catch(showError);
    });
    els.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        els.composer.requestSubmit();
      } else if (event.key === "Escape" && state.live.has(state.currentId)) {
        event.preventDefault();
        stop();
      }
    });
    els.stop.addEventListener("click", () => stop());
    els.newConversation.addEventListener("click", () => {
      closeSidebarOnPhone();
      startDraft();
    });
    els.model.addEventListener("change", () => {
      try {
        localStorage.setItem(MODEL_STORAGE, els.model.value);
      } catch {
        // No storage: the choice lasts for this page.
      }
    });
    els.openKey.addEventListener("click", () => askForKey(KEY_PROMPT));
    els.keyForm.addEventListener("submit", saveKey);
    els.keyCancel.addEventListener("click", () => els.keyDialog.close());
    els.keyDialog.addEventListener("close", keyDialogClosed);
    els.dismissError.addEventListener("click", clearError);
    els.toggleSidebar.addEventListener("click", () => {
      const open = els.sidebar.classList.toggle("open");
      els.toggleSidebar.setAttribute("aria-expanded", String(open));
    });
    window.addEventListener("hashchange", () => {
      const wanted = decodeURIComponent(location.hash.slice(1));
      if (!wanted) startDraft();
      else if (wanted !== state.currentId) openConversation(wanted).catch(showError);
    });
  }

  wire();
  renderHeading();
  loadEverything();
})();
