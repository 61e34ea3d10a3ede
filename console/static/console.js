// The console's behaviour beyond htmx: seek the recording from an utterance, draw its waveform, draw the charts.
(function () {
  "use strict";

  function player() { return document.getElementById("player"); }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-start-ms]");
    var audio = player();
    if (!target || !audio) { return; }
    var ms = parseInt(target.getAttribute("data-start-ms"), 10);
    if (ms >= 0) { audio.currentTime = ms / 1000; audio.play(); }
  });

  function drawWaveform(canvas, peaks) {
    var width = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
    var height = canvas.height;
    var context = canvas.getContext("2d");
    var colours = ["#2f855a", "#1f6feb"];  // left: the caller, right: the AI
    context.clearRect(0, 0, width, height);
    peaks.channels.forEach(function (column, channel) {
      var middle = height * (channel === 0 ? 0.25 : 0.75);
      context.fillStyle = colours[channel % 2];
      column.forEach(function (value, i) {
        var x = Math.floor(i * width / column.length);
        var h = Math.max(1, value * height / 4);
        context.fillRect(x, middle - h, Math.max(1, Math.ceil(width / column.length)), 2 * h);
      });
    });
  }

  function setUpWaveform() {
    var canvas = document.getElementById("waveform");
    var audio = player();
    if (!canvas || !audio) { return; }
    fetch(canvas.getAttribute("data-peaks"), {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (peaks) {
        drawWaveform(canvas, peaks);
        canvas.addEventListener("click", function (event) {
          var box = canvas.getBoundingClientRect();
          audio.currentTime = peaks.seconds * (event.clientX - box.left) / box.width;
        });
      });
  }

  function setUpCharts() {
    var data = document.getElementById("dashboard-data");
    if (!data || typeof uPlot === "undefined") { return; }
    var days = JSON.parse(data.textContent);
    var xs = days.map(function (d) { return Date.parse(d.day + "T00:00:00Z") / 1000; });
    var colours = ["#1d2430", "#2f855a", "#805ad5", "#dd6b20", "#c53030"];
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var labels = JSON.parse(box.getAttribute("data-series"));
      var keys = Object.keys(labels);
      var series = [{}].concat(keys.map(function (key, i) { return {label: labels[key], stroke: colours[i % colours.length], width: 2}; }));
      var columns = [xs].concat(keys.map(function (key) { return days.map(function (d) { return d[key]; }); }));
      new uPlot({width: box.clientWidth || 600, height: 220, series: series}, columns, box);
    });
  }

  // the playheads: on the waveform (the recording's length) and on the timeline (the call's length)
  function setUpPlayheads() {
    var audio = player();
    if (!audio) { return; }
    audio.addEventListener("timeupdate", function () {
      document.querySelectorAll(".playhead").forEach(function (head) {
        var span = parseInt(head.getAttribute("data-span-ms"), 10) / 1000 || audio.duration;
        var box = head.parentElement.querySelector(".lane") || head.parentElement;
        if (span > 0) { head.style.left = Math.min(1, audio.currentTime / span) * box.clientWidth + "px"; }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setUpWaveform(); setUpCharts(); setUpPlayheads(); });
})();
