// The LISTEN/NOTIFY bridge, written as the tutorials write it: a PL/pgSQL trigger
// (notify.sql) calls pg_notify with the row as JSON; one pg client LISTENs; a ws server keeps
// a room (a Set of sockets) per user; each notification costs one unread-count query from a
// pg Pool, then the frame goes to every socket in the user's room.
//
//   BENCH_PORT=18393 PGHOST=... PGPORT=... PGDATABASE=app PGUSER=postgres node server.js
//
// Connect as ws://127.0.0.1:$BENCH_PORT/?user=42 (no authentication, like livenotifyd in
// auth=none mode and the Django consumer in this benchmark).
'use strict';

const http = require('http');
const { Client, Pool } = require('pg');
const { WebSocketServer } = require('ws');

const port = Number(process.env.BENCH_PORT || 18393);
const pool = new Pool(); // libpq-style PG* environment; default size 10
const rooms = new Map(); // user id (string) -> Set of sockets

const server = http.createServer((req, res) => {
  res.writeHead(200);
  res.end('ok\n'); // readiness probe of the harness
});
const wss = new WebSocketServer({ server });

wss.on('connection', (ws, req) => {
  const user = new URL(req.url, 'http://x').searchParams.get('user');
  if (!user) {
    ws.close(1008, 'user required');
    return;
  }
  let room = rooms.get(user);
  if (!room) {
    room = new Set();
    rooms.set(user, room);
  }
  room.add(ws);
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0) rooms.delete(user);
  });
});

async function onNotification(msg) {
  const row = JSON.parse(msg.payload);
  const room = rooms.get(String(row.user_id));
  if (!room) return; // nobody online: the row is in the table for later
  const { rows } = await pool.query(
    'SELECT count(*) AS unread FROM api_notification WHERE user_id = $1 AND NOT is_read',
    [row.user_id]
  );
  const frame = JSON.stringify({
    type: 'notification',
    notification: row,
    unread_count: Number(rows[0].unread),
  });
  for (const ws of room) ws.send(frame);
}

async function main() {
  const listener = new Client();
  await listener.connect();
  listener.on('notification', (msg) => {
    onNotification(msg).catch((err) => console.error('notification failed:', err.message));
  });
  listener.on('error', (err) => {
    console.error('listener error:', err.message);
    process.exit(1);
  });
  await listener.query('LISTEN notifications');
  server.listen(port, '127.0.0.1', () => console.error(`bridge listening on ${port}`));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

process.on('SIGTERM', () => process.exit(0));
