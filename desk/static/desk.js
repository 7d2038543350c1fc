// Frontdesk desk: live updates (server-sent events -> htmx refresh triggers) and keyboard shortcuts.
(function () {
  "use strict";

  function fire(name, detail) {
    if (window.htmx) { window.htmx.trigger(document.body, name, detail || {}); }
  }

  function connect() {
    var url = document.body.dataset.liveUrl;
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    var connectedBefore = false;
    source.addEventListener("ready", function () {
      document.body.dataset.live = "on";
      if (connectedBefore) {
        // Reconnected: changes made while the stream was down were not announced, so refresh what is shown.
        fire("desk:tickets", {ids: []});
        var ticket = document.querySelector("[data-ticket-id].ticket-layout");
        if (ticket) { fire("desk:ticket-" + ticket.dataset.ticketId, {}); }
      }
      connectedBefore = true;
    });
    source.addEventListener("tickets", function (e) {
      var data = JSON.parse(e.data);
      fire("desk:tickets", data);
      data.ids.forEach(function (id) { fire("desk:ticket-" + id, data); });
    });
    source.addEventListener("messages", function (e) {
      var data = JSON.parse(e.data);
      fire("desk:messages", data);
      data.ticket_ids.forEach(function (id) { fire("desk:ticket-" + id, data); });
    });
    source.onerror = function () { document.body.dataset.live = "off"; };  // EventSource retries by itself
  }

  function scrollConversation() {
    var list = document.querySelector("#conversation .messages");
    if (list) { list.scrollTop = list.scrollHeight; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    scrollConversation();
    document.body.addEventListener("htmx:oobAfterSwap", function (e) {
      if (e.detail && e.detail.target && e.detail.target.id === "conversation") { scrollConversation(); }
    });
    // A refused htmx request (stale form token, server error): say so instead of doing nothing.
    document.body.addEventListener("htmx:responseError", function (e) {
      var flash = document.getElementById("flash");
      if (!flash) { return; }
      var text = "Something went wrong (" + e.detail.xhr.status + "). Reload the page and try again.";
      try { text = JSON.parse(e.detail.xhr.responseText).detail || text; } catch (err) { /* not JSON */ }
      var box = document.createElement("div");
      box.className = "flash error";
      box.textContent = text;
      flash.replaceChildren(box);
    });
    // The page's own handlers live here, not in on*= or hx-on attributes: the CSP allows no inline script.
    document.body.addEventListener("htmx:afterRequest", function (e) {
      var form = e.target.closest && e.target.closest("#composer-form");
      if (form && e.detail.xhr && e.detail.xhr.getResponseHeader("X-Desk-Ok")) { form.reset(); }
    });
    document.body.addEventListener("click", function (e) {
      var close = e.target.closest && e.target.closest("[data-dismiss=flash]");
      if (close && close.parentElement) { close.parentElement.remove(); }
    });
    document.body.addEventListener("change", function (e) {
      if (e.target.matches && e.target.matches("select[data-autosubmit]") && e.target.form) {
        e.target.form.requestSubmit();
      }
    });
    document.body.addEventListener("keydown", function (e) {
      if (e.target && e.target.id === "reply-text" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        var send = document.getElementById("send-reply");
        if (send && !send.disabled) { e.preventDefault(); send.click(); }
      }
    });
  });
})();
