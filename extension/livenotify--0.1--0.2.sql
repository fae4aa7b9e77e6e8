/* livenotify--0.1--0.2.sql: ALTER EXTENSION livenotify UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION livenotify UPDATE TO '0.2'" to load this file. \quit

-- Each section below is the upgrade half of one change to livenotify--0.2.sql; a database
-- upgraded from 0.1 must end up with the same objects, grants and data as a fresh 0.2 install
-- (test/upgrade checks it).
