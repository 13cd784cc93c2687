// Keyboard shortcuts for the review pages. An element with data-key="x" is clicked (or, for a
// text field, focused) when x is pressed outside a text field; a rule's data-cycle-key="n"
// switches its right/wrong radios; Ctrl+Enter submits the judgment; Esc leaves a text field.
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
  document.addEventListener("click", function (ev) {
    var from = ev.target.getAttribute && ev.target.getAttribute("data-copy-from");
    if (!from) return;
    var rewrite = document.getElementById("rewrite");
    rewrite.value = document.getElementById(from).textContent;
    document.getElementById("prefer-rewrite").checked = true;
    rewrite.focus();
  });
})();
