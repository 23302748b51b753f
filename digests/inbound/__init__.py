"""Inbound mail: what comes back after delivery, read and turned into reader status.

The stage owns the mail that arrives at BOUNCE_DOMAIN (and at MAIL_FROM when the MTA routes it
here): delivery reports (RFC 3464 and the non-standard formats flufl.bounce knows), complaint
reports (ARF, RFC 5965), and mailed unsubscribes (the List-Unsubscribe mailto, or a reply saying
"unsubscribe"). Nothing is believed without a valid VERP token (digests.verp) bound to the reader's
current address.

    parse.py     bytes -> Parsed (pure: what kind of message, which tokens it carries)
    outcomes.py  Parsed -> reader status, recorded as an InboundEvent (database)
    server.py    the aiosmtpd listener (`clapper inbound`, and inside `clapper run`)
"""
