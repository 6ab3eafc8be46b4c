import time

print("Wait for 10 seconds..")
time.sleep(10)
print("Done waiting")
