// What the views print: quantities, ages, pod status and rollout state, computed the way
// kubectl prints them so the page and the terminal agree.

const SUFFIXES = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

// A Kubernetes quantity ("250m", "16132Ki", "1e3", "2") as a number; NaN if it is not one.
export function quantity(q) {
  if (q === undefined || q === null) return NaN;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|([a-zA-Z]*))$/.exec(String(q).trim());
  if (!m) return NaN;
  if (m[2]) return Number(m[1] + m[2]);
  const mult = SUFFIXES[m[3] || ''];
  return mult === undefined ? NaN : Number(m[1]) * mult;
}

export function cores(n) {
  if (!Number.isFinite(n)) return '–';
  return n < 1 ? `${Math.round(n * 1000)}m` : `${+n.toFixed(2)}`;
}

export function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)}${units[i]}`;
}

// Upstream's short human duration: 42s, 5m, 3h, 12d.
export function age(timestamp, now = Date.now()) {
  if (!timestamp) return '';
  const s = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// kubectl's STATUS column.
export function podStatus(p) {
  const st = p.status || {};
  let reason = st.reason || st.phase || 'Unknown';
  const inits = st.initContainerStatuses || [];
  for (let i = 0; i < inits.length; i++) {
    const s = inits[i].state || {};
    if (s.terminated && s.terminated.exitCode === 0) continue;
    if (s.terminated) {
      reason = `Init:${s.terminated.reason || `ExitCode:${s.terminated.exitCode}`}`;
    } else if (s.waiting && s.waiting.reason && s.waiting.reason !== 'PodInitializing') {
      reason = `Init:${s.waiting.reason}`;
    } else {
      reason = `Init:${i}/${(p.spec?.initContainers || []).length}`;
    }
    return p.metadata.deletionTimestamp ? 'Terminating' : reason;
  }
  for (const c of [...(st.containerStatuses || [])].reverse()) {
    const s = c.state || {};
    if (s.waiting && s.waiting.reason) reason = s.waiting.reason;
    else if (s.terminated && s.terminated.reason) reason = s.terminated.reason;
    else if (s.terminated) reason = `ExitCode:${s.terminated.exitCode}`;
  }
  if (p.metadata.deletionTimestamp) return 'Terminating';
  return reason;
}

export function podReady(p) {
  const cs = p.status?.containerStatuses || [];
  const total = (p.spec?.containers || []).length;
  return `${cs.filter((c) => c.ready).length}/${total}`;
}

export function podRestarts(p) {
  return (p.status?.containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
}

// A status's colour class.
export function statusKind(text) {
  if (['Running', 'Succeeded', 'Completed', 'Complete', 'True', 'Normal', 'Ready'].includes(text)) return 'ok';
  if (/Err|BackOff|Fail|Unknown|NotReady|Evicted|OOM|Warning|False/.test(text)) return 'bad';
  return 'warn';
}

export function condition(obj, type) {
  return (obj.status?.conditions || []).find((c) => c.type === type);
}

// `kubectl rollout status` for a Deployment: [short state, explanation].
export function rolloutState(d) {
  const spec = d.spec || {};
  const st = d.status || {};
  const want = spec.replicas ?? 1;
  const progressing = condition(d, 'Progressing');
  if ((d.metadata.generation || 0) > (st.observedGeneration || 0)) {
    return ['Pending', 'waiting for the controller to observe the new spec'];
  }
  if (progressing && progressing.reason === 'ProgressDeadlineExceeded') {
    return ['Failed', progressing.message || 'progress deadline exceeded'];
  }
  if ((st.updatedReplicas || 0) < want) {
    return ['Rolling out', `${st.updatedReplicas || 0} of ${want} updated`];
  }
  if ((st.replicas || 0) > (st.updatedReplicas || 0)) {
    return ['Rolling out', `${st.replicas - st.updatedReplicas} old replicas pending termination`];
  }
  if ((st.availableReplicas || 0) < (st.updatedReplicas || 0)) {
    return ['Rolling out', `${st.availableReplicas || 0} of ${st.updatedReplicas} updated available`];
  }
  return ['Complete', 'successfully rolled out'];
}

// Whether an object's labels match a LabelSelector (matchLabels and matchExpressions).
export function selects(selector, labels) {
  if (!selector) return false;
  const l = labels || {};
  for (const [k, v] of Object.entries(selector.matchLabels || {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const vals = e.values || [];
    if (e.operator === 'In' && !(has && vals.includes(l[e.key]))) return false;
    if (e.operator === 'NotIn' && has && vals.includes(l[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

export const byName = (a, b) =>
  (a.metadata.namespace || '').localeCompare(b.metadata.namespace || '') ||
  a.metadata.name.localeCompare(b.metadata.name);
