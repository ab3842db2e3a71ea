#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read a git format-patch cover letter.

  cover.py extract COVER   print the subject and blurb as a branch
                           description (subject, blank line, body), the
                           form git format-patch --cover-from-description
                           turns back into the same cover letter
  cover.py msgid COVER     print its Message-ID (empty if none)
"""
import email
import email.policy
import re
import sys


def load(path):
    with open(path, 'rb') as f:
        return email.message_from_binary_file(f, policy=email.policy.compat32)


def extract(path):
    msg = load(path)
    subject = re.sub(r'\s*\n\s*', ' ', str(msg['Subject'] or ''))
    subject = re.sub(r'^\[[^]]*PATCH[^]]*\]\s*', '', subject)
    body = msg.get_payload(decode=True).decode('utf-8')
    lines = body.split('\n')
    # The blurb ends where git's shortlog starts: "Name (N):" then "  subject".
    end = len(lines)
    for i in range(len(lines) - 1):
        if re.match(r'^\S.* \(\d+\):$', lines[i]) and lines[i + 1].startswith('  '):
            end = i
            break
    blurb = '\n'.join(lines[:end]).strip('\n')
    if not subject or '*** SUBJECT HERE ***' in subject:
        sys.exit(f'{path}: the cover letter has no subject')
    print(subject)
    print()
    print(blurb)


def msgid(path):
    print((load(path)['Message-ID'] or '').strip())


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in ('extract', 'msgid'):
        sys.exit(__doc__)
    {'extract': extract, 'msgid': msgid}[sys.argv[1]](sys.argv[2])
