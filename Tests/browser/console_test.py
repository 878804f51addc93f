#!/usr/bin/env python3
"""The console in a real headless Chromium (Debian's chromium and chromium-driver), driven by
Selenium, with axe-core (shipped by axe-selenium-python) checking each page.

Usage: console_test.py BASE ADMIN ADMIN_PASSWORD SCREENSHOT_DIR (the requester is one the admin creates)
Fails (exit 1) on any step that does not hold, any serious or critical axe violation, and any
error in the browser's console.
"""
import json
import os
import re
import sys

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, admin, admin_password, shots = sys.argv[1:5]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")))
driver.set_page_load_timeout(30)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def visible(element_id, timeout=10):
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.ID, element_id)))


def accessible(page):
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    bad = [(v["id"], v["impact"], len(v["nodes"])) for v in results["violations"] if v["impact"] in ("serious", "critical")]
    check(not bad, f"{page}: axe-core found serious or critical violations: {bad}")


def screenshot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def log_in(username, password):
    visible("username").send_keys(username)
    # Keyboard only: Enter in the password field submits the form.
    driver.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    visible("bookings")


try:
    driver.get(base + "/")
    visible("login")
    check(driver.current_url == base + "/app/", f"/ led to {driver.current_url}, not /app/")
    check(driver.switch_to.active_element.get_attribute("id") == "username", "the username field has the focus")
    screenshot("login")
    accessible("login")

    log_in(admin, admin_password)
    check(f"Signed in as {admin} (admin)" in driver.find_element(By.ID, "who").text, "the admin's name and role are shown")
    rows = driver.find_element(By.ID, "rows").text
    for topic in ("Console check", "Overlapping request", "Another request"):
        check(topic in rows, f"the pending booking {topic!r} is listed")
    check(driver.execute_script("return localStorage.length + sessionStorage.length") == 0, "nothing in web storage")
    screenshot("admin-queue")
    accessible("admin-queue")

    ids = json.loads(os.environ["CONSOLE_BOOKINGS"])
    # Accept one; the overlapping one is then refused, with a link to the booking in the way.
    visible(f"accept-{ids['first']}").click()
    WebDriverWait(driver, 10).until(lambda d: "accepted" in d.find_element(By.ID, "status").text)
    visible(f"accept-{ids['overlap']}").click()
    link = visible("conflict-link")
    check(link.get_attribute("href").endswith(f"#booking-{ids['first']}"), "the overlap links to the accepted booking")
    check("overlaps accepted booking" in driver.find_element(By.ID, "status").text, "the overlap is explained")
    screenshot("admin-overlap")
    # Reject the third with a note.
    visible(f"note-{ids['other']}").send_keys("No room that day")
    visible(f"reject-{ids['other']}").click()
    WebDriverWait(driver, 10).until(lambda d: "rejected" in d.find_element(By.ID, "status").text)
    check(not driver.find_elements(By.ID, f"booking-{ids['other']}"), "the rejected booking left the queue")

    # Create a requester: the generated password is shown once, with a copy button.
    visible("u-username").send_keys("newbie")
    driver.find_element(By.CSS_SELECTOR, "#new-user button[type=submit]").click()
    visible("new-password")
    new_password = driver.find_element(By.ID, "new-password-value").text
    check(len(new_password) >= 12, "a one-time password is shown")
    check(driver.find_element(By.ID, "copy-password").is_displayed(), "with a copy button")
    screenshot("admin-user-created")
    accessible("admin-user-created")
    visible("u-username").send_keys("newbie")
    driver.find_element(By.CSS_SELECTOR, "#new-user button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "u-username").get_attribute("aria-invalid") == "true")
    check("exists" in driver.find_element(By.ID, "e-u-username").text, "a taken username is marked at the field")
    check(not driver.find_element(By.ID, "new-password").is_displayed(), "the earlier password is no longer shown")

    # A reload keeps the session (the HttpOnly refresh cookie), without the password again.
    driver.refresh()
    visible("bookings")
    check(driver.find_element(By.ID, "login").is_displayed() is False, "still signed in after a reload")

    driver.find_element(By.ID, "logout").click()
    visible("login")
    driver.refresh()
    visible("login")
    check(not driver.find_element(By.ID, "bookings").is_displayed(), "logged out for good after a reload")

    # The requester the admin just created logs in with the one-time password.
    log_in("newbie", new_password)
    check(driver.find_element(By.ID, "bookings-title").text == "Your bookings", "a requester sees their own bookings")
    check(not driver.find_element(By.ID, "users").is_displayed(), "no user administration for a requester")
    screenshot("requester")
    accessible("requester")

    # A submission with an empty topic and an unknown country: each field marked where it is.
    def fill(values):
        for field, value in values.items():
            driver.execute_script("arguments[0].value = arguments[1]", visible(f"f-{field}"), value)
    fill({"topic": "", "event_time": "2027-03-01T10:00", "duration_minutes": "90", "address-street": "1 Main St",
          "address-city": "Oslo", "address-country": "Atlantis", "requested_by": "rita@example.com"})
    driver.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    visible("e-topic")
    check(driver.find_element(By.ID, "f-topic").get_attribute("aria-invalid") == "true", "the topic is marked invalid")
    check("Atlantis" in visible("e-address-country").text, "the country's error names the value")
    check(driver.find_element(By.ID, "f-requested_by").get_attribute("aria-invalid") is None, "valid fields are not marked")
    screenshot("requester-field-errors")
    accessible("requester-field-errors")
    fill({"topic": "Book launch", "address-country": "Norway"})
    driver.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "Book launch" in d.find_element(By.ID, "rows").text)
    check(driver.find_element(By.ID, "f-topic").get_attribute("aria-invalid") is None, "the marks are gone after a good submission")
    row = [r for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr") if "Book launch" in r.text][0]
    row.find_element(By.CSS_SELECTOR, "button[id^=cancel-]").click()
    WebDriverWait(driver, 10).until(lambda d: "cancelled" in d.find_element(By.ID, "status").text)
    row = [r for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr") if "Book launch" in r.text][0]
    check("cancelled" in row.text, "the cancelled booking shows its status")
    screenshot("requester-cancelled")

    # Errors in the page. Chrome also reports each HTTP error answer as a console line; the 409
    # and 422 that this test provokes on purpose are the only ones allowed.
    provoked = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and not provoked.search(entry["message"])]
    check(not errors, f"errors in the browser console: {errors}")
except Exception as error:  # a step that timed out or an element that is missing
    failures.append(f"{type(error).__name__}: {error}")
    screenshot("failure")
finally:
    driver.quit()

print(json.dumps({"failures": failures}))
sys.exit(1 if failures else 0)
