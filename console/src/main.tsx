import { render } from 'preact';
import { App } from './app.js';

const root = document.getElementById('app')!;
root.textContent = ''; // the "Loading…" placeholder
render(<App />, root);
