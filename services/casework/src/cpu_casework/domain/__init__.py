"""Domain core of casework: aggregates, value objects and rules. No I/O.

One module per concept:

* ``case`` - the ``Case`` aggregate (opening, linking referrals, every command);
* ``lifecycle`` - the status transition table and what each transition requires;
* ``assignment`` - team and investigator assignment, reassignment with a reason;
* ``outcomes`` - suspects, arrests, charges, court outcomes, sentences, child homicide;
* ``offences`` - the offence code table (``offences.json``);
* ``victim_services`` - services to the children and their providers;
* ``deadlines`` - first-contact targets, tasks and overdue lists per team;
* ``events`` - domain events; ``errors`` and ``values`` - shared errors and value rules.
"""
