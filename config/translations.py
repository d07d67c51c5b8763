"""Chinese for the words of Django and the third-party apps that their own catalogs leave in English.

Django's admin, django-axes, django-celery-results and django-import-export mark these strings for translation but
ship no Simplified Chinese for them (axes has no zh_Hans catalog at all; django-celery-results ships one
only as a .po, which nothing compiles in an installed package). Listed here with gettext_noop, they are
extracted into the project's catalog (`make messages`), and the project's catalog comes first (LOCALE_PATHS), so
the packages' own gettext calls find the Chinese. Nothing imports this module; it exists to be read by xgettext.
"""

from django.utils.translation import gettext_noop

THIRD_PARTY_STRINGS = (
    # django.contrib.admin (app_list.html, 5.1+): the headers a screen reader reads in the side menu
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # django-axes: its models, their fields and the admin's sections
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("Username"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Access lock out"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("Logout Time"),
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop("Account locked: too many login attempts. Contact an admin to unlock your account."),
    # django.contrib.auth's add-user page (5.2)
    gettext_noop("After you’ve created a user, you’ll be able to edit more user options."),
    # django-celery-results: what its catalog leaves in English or half in English ("Worker", "traceback")
    gettext_noop("Worker"),
    gettext_noop("Worker that executes the task"),
    gettext_noop("Traceback"),
    gettext_noop("Text of the traceback if the task generated one"),
    gettext_noop("Started DateTime"),
    gettext_noop("Datetime field when the task was started in UTC"),
    gettext_noop("Datetime field when the group result was created in UTC"),
    gettext_noop("Datetime field when the group was completed in UTC"),
    # django-celery-results ships its Simplified Chinese as a .po without the compiled .mo: all of its strings
    gettext_noop("Parameters"),
    gettext_noop("Celery Results"),
    gettext_noop("Task ID"),
    gettext_noop("Celery ID for the Task that was run"),
    gettext_noop("Periodic Task Name"),
    gettext_noop("Name of the Periodic Task which was run"),
    gettext_noop("Task Name"),
    gettext_noop("Name of the Task which was run"),
    gettext_noop("Task Positional Arguments"),
    gettext_noop("JSON representation of the positional arguments used with the task"),
    gettext_noop("Task Named Arguments"),
    gettext_noop("JSON representation of the named arguments used with the task"),
    gettext_noop("Task State"),
    gettext_noop("Current state of the task being run"),
    gettext_noop("Result Content Type"),
    gettext_noop("Content type of the result data"),
    gettext_noop("Result Encoding"),
    gettext_noop("The encoding used to save the task result data"),
    gettext_noop("Result Data"),
    gettext_noop("The data returned by the task.  Use content_encoding and content_type fields to read."),
    gettext_noop("Created DateTime"),
    gettext_noop("Datetime field when the task result was created in UTC"),
    gettext_noop("Completed DateTime"),
    gettext_noop("Datetime field when the task was completed in UTC"),
    gettext_noop("Task Meta Information"),
    gettext_noop("JSON meta information about the task, such as information on child tasks"),
    gettext_noop("task result"),
    gettext_noop("task results"),
    gettext_noop("Group ID"),
    gettext_noop("Celery ID for the Chord header group"),
    gettext_noop("JSON serialized list of task result tuples. use .group_result() to decode"),
    gettext_noop("Starts at len(chord header) and decrements after each task is finished"),
    gettext_noop("Celery ID for the Group that was run"),
    gettext_noop("group result"),
    gettext_noop("group results"),
    # django-celery-beat: untranslated, or translated with its code words left in (True, None, enabled)
    gettext_noop("Execution Options"),
    gettext_noop("Arguments"),
    gettext_noop('JSON encoded keyword arguments (Example: {"argument": "value"})'),
    gettext_noop("Priority Number between 0 and 255. Supported by: RabbitMQ, Redis (priority reversed, 0 is "
                 "highest)."),
    gettext_noop("If True, the schedule will only run the task a single time"),
    gettext_noop("Set to False to disable the schedule"),
    gettext_noop("Datetime that the schedule last triggered the task to run. Reset to None if enabled is set to "
                 "False."),
    gettext_noop('Cron Minutes to Run. Use "*" for "all". (Example: "0,30")'),
    gettext_noop('Cron Hours to Run. Use "*" for "all". (Example: "8,20")'),
    gettext_noop('Cron Days Of The Month to Run. Use "*" for "all". (Example: "1,15")'),
    gettext_noop('Cron Months (1-12) Of The Year to Run. Use "*" for "all". (Example: "1,12")'),
    gettext_noop('Cron Days Of The Week to Run. Use "*" for "all", Sunday is 0 or 7, Monday is 1. (Example: "0,5")'),
    # django-simple-history's history page
    gettext_noop("Changes"),
    gettext_noop("None"),
    # django-import-export
    gettext_noop("Resource"),
    gettext_noop("Select all"),
    gettext_noop("Value could not be parsed."),
    gettext_noop("No valid data to import. Ensure your file has the correct headers or data for import."),
    gettext_noop("%(exc_name)s encountered while trying to read file. Ensure you have chosen the correct format "
                 "for the file."),
    gettext_noop("export failed due to IllegalCharacterError"),
    gettext_noop('Select at least 1 field for "%(resource_name)s" to export'),
)
