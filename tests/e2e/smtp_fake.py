"""A tiny SMTP receiver for the tests (Python's smtpd left in 3.12):
asyncio, one thread, RFC 5321's commands as libcurl uses them (EHLO, AUTH
PLAIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT).

Recipients steer its answers: tempfail+N@... gets 451 on RCPT N times,
then is accepted; reject@... always gets 550. A message with a Message-ID
seen before is acknowledged and not stored again (what a careful receiver
does with a repeat). Standard library only."""
import asyncio
import base64
import email
import email.policy
import threading


class SmtpFake:
    def __init__(self, user=None, password=None):
        self.user, self.password = user, password
        self.lock = threading.Lock()
        self.messages = []   # {"from", "to", "auth", "msg"(EmailMessage), "raw"}
        self.refused = []    # (recipient, code)
        self.tempfail = {}   # recipient -> 451s given
        self.repeats = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)

    async def _session(self, reader, writer):
        def say(line):
            writer.write((line + "\r\n").encode())

        say("220 fake.smtp ESMTP ready")
        auth, mail_from, rcpts = None, None, []
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-fake.smtp")
                    say("250-AUTH PLAIN")
                    say("250 8BITMIME")
                elif line.upper().startswith("AUTH PLAIN"):
                    arg = line[10:].strip()
                    if not arg:
                        say("334 ")
                        await writer.drain()
                        arg = (await reader.readline()).decode().strip()
                    parts = base64.b64decode(arg).split(b"\0")
                    user, pw = parts[1].decode(), parts[2].decode()
                    if (user, pw) == (self.user, self.password):
                        auth = user
                        say("235 2.7.0 Authentication successful")
                    else:
                        say("535 5.7.8 Authentication credentials invalid")
                elif verb == "MAIL":
                    if self.user and not auth:
                        say("530 5.7.0 Authentication required")
                    else:
                        mail_from, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                        say("250 OK")
                elif verb == "RCPT":
                    to = line.split(":", 1)[1].strip().strip("<>")
                    local = to.split("@")[0]
                    with self.lock:
                        if local == "reject":
                            self.refused.append((to, 550))
                            say("550 5.1.1 No such user")
                            continue
                        if local.startswith("tempfail+"):
                            n = int(local.split("+")[1])
                            if self.tempfail.get(to, 0) < n:
                                self.tempfail[to] = self.tempfail.get(to, 0) + 1
                                self.refused.append((to, 451))
                                say("451 4.3.0 Try again later")
                                continue
                    rcpts.append(to)
                    say("250 OK")
                elif verb == "DATA":
                    if not rcpts:
                        say("503 5.5.1 No recipients")
                        continue
                    say("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    lines = []
                    while True:
                        l = await reader.readline()
                        if l in (b".\r\n", b".\n", b""):
                            break
                        lines.append(l[1:] if l.startswith(b"..") else l)
                    data = b"".join(lines)
                    msg = email.message_from_bytes(data, policy=email.policy.default)
                    with self.lock:
                        mid = msg["Message-ID"]
                        if any(m["msg"]["Message-ID"] == mid for m in self.messages):
                            self.repeats += 1
                        else:
                            self.messages.append({"from": mail_from, "to": list(rcpts), "auth": auth, "msg": msg,
                                                  "raw": data})
                    say("250 2.0.0 Queued")
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    say("250 OK")
                elif verb == "NOOP":
                    say("250 OK")
                elif verb == "QUIT":
                    say("221 Bye")
                    await writer.drain()
                    return
                else:
                    say("502 5.5.2 Command not recognized")
                await writer.drain()
        finally:
            writer.close()

    def to(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt in m["to"]]
