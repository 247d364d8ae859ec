// Doppel review site: wires each <figure class="viewer"> (play/pause, time scrubber, camera reset) and loads its
// model. Over HTTP the .glb is fetched; from disk (file://, where fetch is refused) the same bytes come from a
// classic script (NAME.view.glb.js) and are handed to <model-viewer> as a blob: URL.
(function () {
  "use strict";
  function fmt(t) { return (isFinite(t) ? t : 0).toFixed(2); }

  function fromScript(mv) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = mv.dataset.srcJs;
      s.onload = function () {
        var b64 = (window.doppelReviewGlb || {})[mv.dataset.key];
        if (!b64) { reject(new Error("no model in " + mv.dataset.srcJs)); return; }
        var bin = atob(b64), bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        resolve(URL.createObjectURL(new Blob([bytes], { type: "model/gltf-binary" })));
      };
      s.onerror = function () { reject(new Error("cannot read " + mv.dataset.srcJs)); };
      document.head.appendChild(s);
    });
  }

  function setup(box) {
    var mv = box.querySelector("model-viewer");
    var play = box.querySelector("button.play"), scrub = box.querySelector("input.scrub");
    var time = box.querySelector(".time"), reset = box.querySelector("button.reset");
    var err = box.querySelector(".mv-error");
    var home = { orbit: mv.getAttribute("camera-orbit"), target: mv.getAttribute("camera-target"),
                 fov: mv.getAttribute("field-of-view") };
    mv.addEventListener("load", function () {
      if (mv.duration > 0) scrub.max = mv.duration;
      box.dataset.loaded = "1";
    });
    mv.addEventListener("error", function (e) {
      err.hidden = false;
      err.textContent = "The 3D model could not be shown (" + ((e.detail && e.detail.type) || "error") + ").";
    });
    mv.addEventListener("play", function () { play.textContent = "Pause"; });
    mv.addEventListener("pause", function () { play.textContent = "Play"; });
    play.addEventListener("click", function () { if (mv.paused) mv.play(); else mv.pause(); });
    scrub.addEventListener("input", function () { mv.pause(); mv.currentTime = parseFloat(scrub.value); });
    reset.addEventListener("click", function () {
      mv.cameraOrbit = home.orbit; mv.cameraTarget = home.target; mv.fieldOfView = home.fov;
      mv.jumpCameraToGoal();
    });
    (function tick() {
      if (!mv.paused) scrub.value = mv.currentTime;
      time.textContent = fmt(mv.currentTime) + " / " + fmt(mv.duration) + " s";
      window.requestAnimationFrame(tick);
    })();
    if (location.protocol === "file:") {
      fromScript(mv).then(function (url) { mv.src = url; }, function (e) {
        err.hidden = false; err.textContent = e.message;
      });
    } else {
      mv.src = mv.dataset.src;
    }
  }

  document.querySelectorAll("figure.viewer").forEach(setup);
})();
