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
    source.addEventListener("sla", function (e) { JSON.parse(e.data).alerts.forEach(slaBanner); });
    source.addEventListener("assigned", function (e) { showAssigned(JSON.parse(e.data)); });
    source.onerror = function () { document.body.dataset.live = "off"; };  // EventSource retries by itself
  }

  // Automatic assignment gave this agent a ticket (the feed sends the notice to that agent only).
  function showAssigned(data) {
    var box = document.getElementById("assigned-notices");
    if (!box || box.querySelector('[data-ticket="' + data.ticket_id + '"]')) { return; }
    var notice = document.createElement("p");
    notice.className = "assigned-notice";
    notice.dataset.ticket = String(data.ticket_id);
    var link = document.createElement("a");
    link.href = (document.body.dataset.homeUrl || "/") + "tickets/" + data.ticket_id;
    link.textContent = "Open ticket #" + data.ticket_id;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn small";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { notice.remove(); });
    notice.append("Ticket #" + data.ticket_id + (data.queue ? " (" + data.queue + ")" : "") +
                  " was assigned to you. ", link, " ", close);
    box.append(notice);
  }

  // An SLA warning or breach the sweeper recorded: a banner on whatever page the agent is on (newest first,
  // a few at most), with a link to the ticket.  Text only: the subject is the customer's words.
  function slaBanner(alert) {
    var box = document.getElementById("sla-alerts");
    if (!box) { return; }
    var banner = document.createElement("div");
    banner.className = "sla-banner " + (alert.state === "breached" ? "breached" : "warning");
    banner.setAttribute("role", "alert");
    var link = document.createElement("a");
    link.href = box.dataset.ticketPath + Number(alert.ticket_id);
    link.textContent = "#" + Number(alert.ticket_id) + " " + (alert.subject || "");
    var what = document.createElement("span");
    what.textContent = (alert.state === "breached" ? "SLA breached: " : "SLA warning (80% used): ") +
      String(alert.metric).replace(/_/g, " ");
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.dataset.dismiss = "flash";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    banner.append(what, link, close);
    box.prepend(banner);
    while (box.children.length > 5) { box.lastElementChild.remove(); }
  }

  function scrollConversation() {
    var list = document.querySelector("#conversation .messages");
    if (list) { list.scrollTop = list.scrollHeight; }
  }

  // Saved replies: pick one from the list, or type "/" and the start of its name in the reply box, then
  // Enter or Tab (arrows move, Escape closes).  The options carry the text already filled in for this
  // ticket; listeners sit on the body because the composer is swapped after every action.
  function savedReplies() {
    var SLASH = /(^|\s)\/([a-z0-9_-]*)$/;
    var active = 0;

    function parts() {
      return {
        box: document.getElementById("reply-text"),
        picker: document.getElementById("saved-reply-picker"),
        list: document.getElementById("saved-reply-suggestions"),
        note: document.getElementById("saved-reply-unfilled")
      };
    }

    function options(picker) {
      return Array.prototype.filter.call(picker.options, function (o) { return o.value; });
    }

    function insert(option) {
      var p = parts();
      if (!p.box || !option) { return; }
      var before = p.box.value.slice(0, p.box.selectionStart);
      var after = p.box.value.slice(p.box.selectionEnd);
      var slash = before.match(SLASH);
      if (slash) { before = before.slice(0, before.length - slash[0].length) + slash[1]; }
      p.box.value = before + option.dataset.text + after;
      var caret = (before + option.dataset.text).length;
      p.box.setSelectionRange(caret, caret);
      p.box.focus();
      hide();
      if (p.note) {
        p.note.hidden = !option.dataset.unfilled;
        p.note.textContent = option.dataset.unfilled ? "Fill in before sending: " + option.dataset.unfilled : "";
      }
      if (p.picker) { p.picker.value = ""; }
    }

    function hide() {
      var list = parts().list;
      if (list) { list.hidden = true; list.replaceChildren(); }
    }

    function show(matches) {
      var list = parts().list;
      list.replaceChildren();
      matches.forEach(function (option, i) {
        var item = document.createElement("li");
        item.setAttribute("role", "option");
        item.dataset.value = option.value;
        item.className = i === active ? "active" : "";
        item.setAttribute("aria-selected", i === active ? "true" : "false");
        var name = document.createElement("strong");
        name.textContent = "/" + option.dataset.name;
        var text = document.createElement("span");
        text.textContent = " " + option.dataset.text.slice(0, 90);
        item.append(name, text);
        list.append(item);
      });
      list.hidden = matches.length === 0;
    }

    function matching() {
      var p = parts();
      if (!p.box || !p.picker) { return []; }
      var slash = p.box.value.slice(0, p.box.selectionStart).match(SLASH);
      if (!slash) { return []; }
      return options(p.picker).filter(function (o) { return o.dataset.name.indexOf(slash[2]) === 0; });
    }

    document.body.addEventListener("input", function (e) {
      if (e.target.id !== "reply-text") { return; }
      active = 0;
      show(matching());
    });
    document.body.addEventListener("keydown", function (e) {
      if (e.target.id !== "reply-text") { return; }
      var list = parts().list;
      if (!list || list.hidden || e.ctrlKey || e.metaKey) { return; }
      var matches = matching();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : matches.length - 1)) % Math.max(matches.length, 1);
        show(matches);
      } else if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        insert(matches[active]);
      } else if (e.key === "Escape") {
        hide();
      }
    });
    document.body.addEventListener("click", function (e) {
      var item = e.target.closest && e.target.closest("#saved-reply-suggestions li");
      var picker = parts().picker;
      if (item && picker) { insert(picker.querySelector('option[value="' + item.dataset.value + '"]')); }
    });
    document.body.addEventListener("change", function (e) {
      if (e.target.id === "saved-reply-picker" && e.target.value) { insert(e.target.selectedOptions[0]); }
    });
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
      var form = e.target.closest && e.target.closest("#composer-form, #tag-form");
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
    savedReplies();
    document.body.addEventListener("keydown", function (e) {
      if (e.target && e.target.id === "reply-text" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        var send = document.getElementById("send-reply");
        if (send && !send.disabled) { e.preventDefault(); send.click(); }
      }
    });
  });
})();
