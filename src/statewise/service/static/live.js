// Live updates: refetch each [data-live] fragment every few seconds and swap it in place.
(function () {
  const every = 3000;
  async function refresh(node) {
    try {
      const answer = await fetch(node.dataset.live, { credentials: "same-origin" });
      if (!answer.ok) throw new Error(answer.status);
      node.innerHTML = await answer.text();
      const stamp = document.getElementById("updated");
      if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      const stamp = document.getElementById("updated");
      if (stamp) stamp.textContent = "update failed (" + error.message + "), retrying";
    }
  }
  function tick() { document.querySelectorAll("[data-live]").forEach(refresh); }
  setInterval(tick, every);
})();
