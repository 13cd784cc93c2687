// Keyboard shortcuts for the review pages. An element with data-key="x" is clicked (or, for a
// text field, focused) when x is pressed outside a text field; a rule's data-cycle-key="n"
// switches its right/wrong radios; Ctrl+Enter submits the judgment; Esc leaves a text field.
// A judgment that cannot be sent names what it lacks, and the focus goes to that message.
"use strict";
(function () {
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
      (tag === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(el.type));
  }
  function act(el) {
    if (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && !/^(radio|checkbox)$/.test(el.type))) {
      el.focus();
      return;
    }
    el.click();
    el.focus();
    var then = el.getAttribute("data-focus");
    if (then) document.getElementById(then).focus();
  }
  function cycle(group) {
    var radios = group.querySelectorAll("input[type=radio]");
    var next = radios[0];
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].checked) next = radios[(i + 1) % radios.length];
    }
    next.checked = true;
    next.focus();
  }
  document.addEventListener("keydown", function (ev) {
    var form = document.getElementById("judgment");
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && form) {
      ev.preventDefault();
      form.requestSubmit();
      return;
    }
    if (ev.key === "Escape" && typing(document.activeElement)) {
      document.activeElement.blur();
      return;
    }
    var altGr = ev.getModifierState && ev.getModifierState("AltGraph");
    if ((!altGr && (ev.ctrlKey || ev.metaKey || ev.altKey)) || typing(document.activeElement)) return;
    if (ev.key === "?") {
      var help = document.getElementById("shortcuts");
      if (help) help.open = !help.open;
      ev.preventDefault();
      return;
    }
    var group = document.querySelector('[data-cycle-key="' + CSS.escape(ev.key) + '"]');
    if (group) { ev.preventDefault(); cycle(group); return; }
    var el = document.querySelector('[data-key="' + CSS.escape(ev.key) + '"]');
    if (el) { ev.preventDefault(); act(el); }
  });
  // What a form lacks, named as the page labels it (a radio group by its legend).
  function named(field) {
    var fieldset = field.type === "radio" && field.closest("fieldset");
    var label = fieldset ? fieldset.querySelector("legend") : field.labels && field.labels[0];
    if (!label) return field.name;
    var copy = label.cloneNode(true);
    copy.querySelectorAll("kbd").forEach(function (k) { k.remove(); });
    return copy.textContent.trim();
  }
  function missing(form) {
    var names = [];
    form.querySelectorAll("input, textarea, select").forEach(function (field) {
      var name = field.willValidate && !field.validity.valid && named(field);
      if (name && names.indexOf(name) < 0) names.push(name);
    });
    return names;
  }
  // A form that cannot be sent says what it lacks and takes the focus itself: the browser's
  // own check would put the cursor in a text field, where the next shortcut types a letter.
  function report(form) {
    var box = document.getElementById("form-problems");
    if (!box) {
      box = document.createElement("p");
      box.id = "form-problems";
      box.className = "error";
      box.setAttribute("role", "alert");
      box.tabIndex = -1;
      form.parentNode.insertBefore(box, form);
    }
    box.textContent = "Not sent yet. Missing: " + missing(form).join("; ") + ".";
    box.focus();
  }
  var judging = document.getElementById("judgment");
  if (judging) {
    judging.noValidate = true;
    judging.addEventListener("submit", function (ev) {
      if (!judging.checkValidity()) { ev.preventDefault(); report(judging); }
    });
  }
  // After the server refused a judgment, its message has the focus (not a field), so keys
  // act. (Elsewhere, as on the sign-in page, the field to fix keeps it.)
  var refused = judging && document.querySelector("main .error[role=alert]");
  if (refused) {
    if (!refused.hasAttribute("tabindex")) refused.tabIndex = -1;
    refused.focus();
  }
  document.addEventListener("click", function (ev) {
    var from = ev.target.getAttribute && ev.target.getAttribute("data-copy-from");
    if (!from) return;
    var rewrite = document.getElementById("rewrite");
    rewrite.value = document.getElementById(from).textContent;
    document.getElementById("prefer-rewrite").checked = true;
    rewrite.focus();
  });
})();
