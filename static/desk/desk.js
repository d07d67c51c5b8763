// Keyboard flow of the service desk: the F-key shortcuts shown on screen, arrow and
// number keys in the result list, and a live check of a resident ID number.
// Everything also works without this file, only with more Tab presses.
(function () {
  "use strict";

  var body = document.body;
  var searchBox = document.querySelector("[data-search-box]");
  var dirty = false;

  function isTyping(element) {
    if (!element) return false;
    if (element.tagName === "TEXTAREA" || element.tagName === "SELECT") return true;
    return element.tagName === "INPUT" && ["checkbox", "radio", "submit", "button", "hidden"].indexOf(element.type) === -1;
  }

  // Leaving a half-filled form by a shortcut would lose what the customer dictated.
  Array.prototype.forEach.call(document.querySelectorAll("form[data-guard]"), function (form) {
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("change", function () { dirty = true; });
    form.addEventListener("submit", function () { dirty = false; });
  });

  function go(url) {
    if (dirty && !window.confirm(body.getAttribute("data-confirm-leave"))) return;
    dirty = false;
    window.location.href = url;
  }

  function activate(element) {
    if (element.tagName === "A") {
      go(element.href);
    } else {
      element.click();
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  function moveInResults(key) {
    var results = Array.prototype.slice.call(document.querySelectorAll("[data-results] .result"));
    if (!results.length) return false;
    var index = results.indexOf(document.activeElement);
    if (index === -1) {
      if (key !== "ArrowDown" || document.activeElement !== searchBox) return false;
      results[0].focus();
      return true;
    }
    var next = index + (key === "ArrowDown" ? 1 : -1);
    if (next < 0) {
      searchBox.focus();
      searchBox.select();
    } else {
      results[Math.min(next, results.length - 1)].focus();
    }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var key = event.key;
    if (key === "Escape") {
      event.preventDefault();
      if (!searchBox) {
        go(body.getAttribute("data-search-url"));
      } else if (document.activeElement === searchBox) {
        searchBox.value = "";
      } else {
        searchBox.focus();
        searchBox.select();
      }
      return;
    }
    if (/^F\d{1,2}$/.test(key)) {
      var target = document.querySelector('[data-key="' + key + '"]');
      if (target) {
        event.preventDefault();
        activate(target);
      }
      return;
    }
    if (key === "ArrowDown" || key === "ArrowUp") {
      if (moveInResults(key)) event.preventDefault();
      return;
    }
    if (/^[1-9]$/.test(key) && !isTyping(document.activeElement)) {
      var row = document.querySelector('[data-results] [data-number="' + key + '"]');
      if (row) {
        event.preventDefault();
        window.location.href = row.href;
      }
    }
  });

  // Resident ID (GB 11643): show the birth date and gender it holds while the clerk types.
  var parsed = document.getElementById("id-number-parsed");
  var idInput = document.querySelector("[data-id-number]");
  if (!parsed || !idInput) return;
  var idType = document.querySelector(parsed.getAttribute("data-id-type"));
  var weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var checkChars = "10X98765432";

  function parseResidentId(number) {
    if (!/^\d{17}[\dX]$/.test(number)) return null;
    var sum = 0;
    for (var i = 0; i < 17; i++) sum += Number(number.charAt(i)) * weights[i];
    if (checkChars.charAt(sum % 11) !== number.charAt(17)) return null;
    var year = Number(number.slice(6, 10));
    var month = Number(number.slice(10, 12));
    var day = Number(number.slice(12, 14));
    var born = new Date(year, month - 1, day);
    if (born.getFullYear() !== year || born.getMonth() !== month - 1 || born.getDate() !== day) return null;
    var today = new Date();
    if (born > today) return null;
    var beforeBirthday = today.getMonth() + 1 < month || (today.getMonth() + 1 === month && today.getDate() < day);
    return {
      date: number.slice(6, 10) + "-" + number.slice(10, 12) + "-" + number.slice(12, 14),
      gender: Number(number.charAt(16)) % 2 ? parsed.getAttribute("data-text-male") : parsed.getAttribute("data-text-female"),
      age: today.getFullYear() - year - (beforeBirthday ? 1 : 0)
    };
  }

  function showParsed() {
    var number = idInput.value.replace(/\s+/g, "").toUpperCase();
    parsed.classList.remove("bad");
    if (!number || (idType && idType.value !== "resident_id")) {
      parsed.textContent = "";
      return;
    }
    if (number.length < 18) {
      parsed.textContent = parsed.getAttribute("data-text-count").replace("{n}", number.length);
      return;
    }
    var info = parseResidentId(number);
    if (!info) {
      parsed.textContent = parsed.getAttribute("data-text-invalid");
      parsed.classList.add("bad");
      return;
    }
    parsed.textContent = parsed.getAttribute("data-text-valid")
      .replace("{date}", info.date).replace("{gender}", info.gender).replace("{age}", info.age);
  }

  // An ID-card reader ends with Enter: move on to the next field instead of submitting half a form.
  idInput.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    var fields = Array.prototype.slice.call(idInput.form.querySelectorAll("input:not([type=hidden]), select"));
    var next = fields[fields.indexOf(idInput) + 1];
    if (next) next.focus();
  });
  idInput.addEventListener("input", showParsed);
  if (idType) idType.addEventListener("change", showParsed);
  // After a refused form the server's message already says what is wrong with the number.
  if (!idInput.closest(".has-error")) showParsed();
})();
