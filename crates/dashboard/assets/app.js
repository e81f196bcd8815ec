// The page: sign-in, the hash router, the namespace filter, and the context each view gets
// (live collections shared between views, a confirmation dialog, clean-up on leaving).

import * as api from './api.js';
import { h, fill } from './dom.js';
import overview from './views/overview.js';
import workloads from './views/workloads.js';
import pods from './views/pods.js';
import events from './views/events.js';
import pod from './views/pod.js';
import deployment from './views/deployment.js';

const ROUTES = [
  [/^#\/overview$/, overview, 'overview'],
  [/^#\/workloads$/, workloads, 'workloads'],
  [/^#\/pods$/, pods, 'pods'],
  [/^#\/events$/, events, 'events'],
  [/^#\/pods\/([^/]+)\/([^/]+)$/, pod, 'pods'],
  [/^#\/deployments\/([^/]+)\/([^/]+)$/, deployment, 'workloads'],
];

const $ = (id) => document.getElementById(id);
const NS_KEY = 'rudder.dashboard.namespace';

// Live collections by path. A route change keeps those the new view uses and stops the rest,
// so moving between views does not relist what is already current.
const collections = new Map();
let current = null;

function namespace() {
  return sessionStorage.getItem(NS_KEY) || '';
}

function confirmDialog(message, okLabel = 'Confirm') {
  const dialog = $('confirm');
  $('confirm-message').textContent = message;
  $('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    const done = (ok) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      dialog.removeEventListener('cancel', no);
      dialog.close();
      resolve(ok);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    dialog.addEventListener('cancel', no);
    dialog.showModal();
  });
}

let toastTimer = null;
function toast(message, kind = '') {
  const t = $('toast');
  t.textContent = message;
  t.className = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 5000);
}

function render() {
  if (!api.token()) return showLogin();
  const hash = location.hash || '#/overview';
  const route = ROUTES.find(([re]) => re.test(hash));
  if (!route) {
    location.hash = '#/overview';
    return;
  }
  const [re, view, tab] = route;
  const params = re.exec(hash).slice(1).map(decodeURIComponent);
  if (current) current.cleanups.forEach((f) => f());
  const used = new Set();
  const cleanups = [];
  const main = fill($('main'));
  current = { cleanups };
  const ctx = {
    main,
    ns: namespace(),
    watch(path) {
      used.add(path);
      if (!collections.has(path)) collections.set(path, new api.Collection(path));
      return collections.get(path);
    },
    // Calls `f` now and on every change of any of `cols`, until the view is left.
    live(cols, f) {
      for (const c of cols) cleanups.push(c.subscribe(() => f()));
      f();
    },
    onLeave(f) {
      cleanups.push(f);
    },
    confirm: confirmDialog,
    toast,
  };
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.route === tab);
  namespaceChoices(ctx);
  view(ctx, ...params);
  for (const [path, c] of collections) {
    if (!used.has(path)) {
      c.stop();
      collections.delete(path);
    }
  }
}

// The namespace filter offers the namespaces the user may list (a user who may not types one).
function namespaceChoices(ctx) {
  const col = ctx.watch('/api/v1/namespaces');
  ctx.live([col], () => {
    fill(
      $('namespaces'),
      col.list().map((n) => h('option', { value: n.metadata.name })),
    );
  });
}

function showLogin(message) {
  if (current) current.cleanups.forEach((f) => f());
  current = null;
  for (const c of collections.values()) c.stop();
  collections.clear();
  fill($('main'));
  $('top').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').focus();
}

async function signIn(token) {
  api.setToken(token);
  try {
    // SelfSubjectReview: who the server says the token is (and a check that it is valid).
    const res = await api.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    const review = await res.json();
    $('user').textContent = review.status?.userInfo?.username || '';
    $('login').hidden = true;
    $('top').hidden = false;
    render();
  } catch (e) {
    api.clearToken();
    showLogin(e.status === 401 ? 'The server does not accept this token.' : e.message);
  }
}

function start() {
  api.setUnauthorizedHandler(() => {
    api.clearToken();
    showLogin('Your token was rejected (expired or revoked); sign in again.');
  });
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) signIn(t);
  });
  $('logout').addEventListener('click', () => {
    api.clearToken();
    showLogin();
  });
  const nsInput = $('namespace');
  nsInput.value = namespace();
  nsInput.addEventListener('change', () => {
    sessionStorage.setItem(NS_KEY, nsInput.value.trim());
    render();
  });
  window.addEventListener('hashchange', render);
  if (api.token()) signIn(api.token());
  else showLogin();
}

start();
