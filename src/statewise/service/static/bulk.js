// The bulk form: each state list offers only the chosen workflow's states (all of them,
// grouped by workflow, when none is chosen), and choosing a state from a workflow's group
// chooses that workflow. Without script the server refuses a state of another workflow.
(function () {
  const form = document.querySelector("form[data-bulk]");
  if (!form) return;
  const workflow = form.querySelector("select[name=workflow]");
  const lists = Array.from(form.querySelectorAll("select[data-states]"));
  const groups = new Map(lists.map((list) => [list, Array.from(list.querySelectorAll("optgroup"))]));

  function offer() {
    lists.forEach((list) => {
      const kept = list.value;
      groups.get(list).forEach((group) => {
        const fits = workflow.value === "" || group.dataset.workflow === workflow.value;
        if (fits && !group.isConnected) list.appendChild(group);
        if (!fits && group.isConnected) group.remove();
      });
      const still = Array.from(list.options).some((option) => option.value === kept);
      list.value = still ? kept : "";
    });
  }

  lists.forEach((list) => list.addEventListener("change", () => {
    const chosen = list.selectedOptions[0];
    const group = chosen ? chosen.closest("optgroup") : null;
    if (group && workflow.value === "") {
      workflow.value = group.dataset.workflow;
      offer();
    }
  }));
  workflow.addEventListener("change", offer);
  offer();
})();
